// Lowering of fake-quantized graphs onto integer kernels.
//
// Input: the canonical form of the importer (ir/quant_ops.h), where every
// quantized tensor is `lowbit.Dequantize(codes)` of an integer value. The
// pass gives such tensors an integer representation end to end:
//
//   Dequantize(c) -> Conv(Dequantize(W), b) [-> fused act] -> Quantize -> c'
//     becomes  c -> lowbit.QConv -> c'   (requantizing epilogue, exact int32
//                                          sums; float output when no
//                                          Quantize follows)
//   ... Conv(Add(Dequantize(W1), Dequantize(W2)), b) ...  the same with a
//                                          residual weight pair (below)
//   Quantize(Dequantize(c))           -> c itself (same parameters) or a
//                                          lowbit.CodeTable (requantize)
//   Quantize(unary(Dequantize(c)))    -> lowbit.CodeTable (Relu, LeakyRelu,
//                                          Clip, Sigmoid evaluated per code)
//   Quantize(Concat(Dequantize(c_i))) -> Concat of the codes (tables where an
//                                          input's parameters differ)
//   Quantize(Add(Dequantize(a), Dequantize(b))) -> lowbit.QAdd (same shapes)
//   Quantize(Pad(x, 0)) feeding convolutions -> Quantize(x), the pads move
//                                          into the convolutions (padded with
//                                          the zero point's code)
// Everything else stays in float; the Dequantize / Quantize nodes left at its
// boundary run as kernels. Two lowered layers in a row pass codes, never
// floats. Activation codes handed to lowbit.QConv are unsigned with a zero
// point (signed codes get a code offset, ir/quant_ops.h), so the kernels'
// unsigned formats apply.
//
// lowbit.QConv (read by ops/qconv.cc):
//   inputs:  0 activation codes u8 [N,C,H,W] (zero point `input_zero_point`)
//            1 weights: kPacked, `wbits` bits per value, OHWI order, stored
//              as q = value - weight_min, LSB first (see UnpackWeightValues)
//            2 scale f32 [M]: s_in * s_w[m]       (epilogue multiplier; for
//              a residual pair s_in * s2[m], the accumulator's unit)
//            3 bias  f32 [M]: b[m] (0 where attribute bias_codes[m] is not:
//              an int32 bias in units of the accumulator, added to the exact
//              sums; a channel whose bias stays float has code 0)
//            residual pair only (attribute residual_wbits present), the
//            weights W = s1 * q1 + s2 * q2 with s1[m] == k[m] * s2[m]:
//            4 residual weights q2: kPacked like input 1, with
//              residual_wbits, residual_weight_min, residual_weight_domain
//              (input 1 holds q1)
//            5 multiplier int32 [M]: k[m] >= 1; the accumulator is
//              k[m] * sum(q1 * a) + sum(q2 * a) (two convolutions of the
//              same codes a, summed in int32)
//            (at load, ops::PrepareQuantizedConvs appends after these: the
//            weights in the kernel family's format, the int32 [M] zero-point
//            sums input_zero_point * (k[m] * sum(q1[m]) + sum(q2[m])) -
//            bias_codes[m] (k = 1, no q2 for one tensor), subtracted from the
//            exact sums before the float math, and for a pair the residual
//            weights in their family's format)
//   attributes: kernel_shape, strides, pads, group, wbits, weight_min,
//            weight_domain ("signed" | "binary"), residual_wbits /
//            residual_weight_min / residual_weight_domain (pairs), abits,
//            input_zero_point, lowbit_activation / lowbit_alpha / lowbit_min /
//            lowbit_max (fused), out_codes (1: u8 codes with out_scale,
//            out_zero_point, out_bits; 0: float32); chosen at compile time:
//            lowbit_kernel (+ _choice, _ns), and lowbit_residual_kernel (+
//            _choice, _ns) for a pair's second tensor
//   output: NHWC like Conv.
// A Conv whose pattern is recognised but cannot be lowered (a residual pair
// whose scales are no integer multiples, a dilation, ...) stays in float
// with the reason in its attribute lowbit_not_lowered.
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "ir/quant_ops.h"
#include "ops/qconv.h"
#include "passes/passes.h"
#include "passes/quantized_conv.h"

namespace lowbit::engine::passes {
namespace {

using ir::Graph;
using ir::Node;
using ir::QuantParams;
using ir::Value;

class Lowerer {
 public:
  explicit Lowerer(Graph* graph) : graph_(graph) {}

  Status Run() {
    Index();
    LOWBIT_RETURN_IF_ERROR(MakeActivationCodesUnsigned());
    Index();
    LOWBIT_RETURN_IF_ERROR(HoistPadsIntoConvolutions());
    Index();
    LOWBIT_RETURN_IF_ERROR(PushDequantizeThroughNearestResize());
    Index();
    for (size_t n = 0; n < graph_->nodes.size(); ++n)
      if (graph_->nodes[n].op_type == "Conv") LOWBIT_RETURN_IF_ERROR(LowerConv(n));
    RemoveDead();
    Index();
    // Each rewrite re-indexes: later patterns see the codes earlier ones made.
    for (size_t n = 0; n < graph_->nodes.size();) {
      bool changed = false;
      if (graph_->nodes[n].op_type == ir::kQuantizeOp) {
        const size_t before = graph_->nodes.size();
        LOWBIT_RETURN_IF_ERROR(LowerQuantize(n));
        changed = !dead_.empty() || graph_->nodes.size() != before ||
                  graph_->nodes[n].op_type != ir::kQuantizeOp;
      }
      if (changed) {
        const bool removed_self = dead_.count(static_cast<int>(n)) != 0;
        RemoveDead();
        Index();
        if (removed_self) continue;  // the next node moved into slot n
      }
      ++n;
    }
    return graph_->TopologicalSort();
  }

 private:
  // ---- graph bookkeeping -------------------------------------------------
  void Index() {
    producer_ = graph_->Producers();
    consumers_.assign(graph_->values.size(), {});
    for (size_t n = 0; n < graph_->nodes.size(); ++n)
      for (int in : graph_->nodes[n].inputs)
        if (in != ir::kNoValue) consumers_[in].push_back(static_cast<int>(n));
    is_output_.assign(graph_->values.size(), false);
    for (int o : graph_->outputs) is_output_[o] = true;
  }
  const Node* Producer(int value) const {
    return producer_[value] < 0 ? nullptr : &graph_->nodes[producer_[value]];
  }
  bool SoleUse(int value) const { return consumers_[value].size() == 1 && !is_output_[value]; }
  void Kill(size_t n) { dead_.insert(static_cast<int>(n)); }
  // Every node reading `from` reads `to` instead.
  void ReplaceUses(int from, int to) {
    for (int c : consumers_[from])
      for (int& in : graph_->nodes[c].inputs)
        if (in == from) in = to;
  }
  void RemoveDead() {
    std::vector<Node> kept;
    for (size_t n = 0; n < graph_->nodes.size(); ++n)
      if (!dead_.count(static_cast<int>(n))) kept.push_back(std::move(graph_->nodes[n]));
    graph_->nodes = std::move(kept);
    dead_.clear();
  }
  // Codes value behind `value` when it is Dequantize(codes) of a run-time
  // value with per-tensor parameters; -1 otherwise.
  int CodesBehind(int value, QuantParams* params) const {
    const Node* dq = Producer(value);
    if (dq == nullptr || dq->op_type != ir::kDequantizeOp) return -1;
    if (graph_->values[dq->inputs[0]].is_constant()) return -1;
    auto p = ir::ReadQuantParams(*graph_, *dq);
    if (!p.ok() || !p->per_tensor() || p->zero_points.size() != 1) return -1;
    if (params) *params = *p;
    return dq->inputs[0];
  }

  // ---- 1. unsigned activation codes ------------------------------------
  // Every run-time Quantize whose codes only feed Dequantize nodes gets
  // code_offset = qmin, so its codes are 0..qmax-qmin with zero point
  // zp - qmin (the float values are unchanged).
  // Every Quantize output also gets its precision (bits of the stored code
  // range, scale, zero point in the code domain): the lowered ops read the
  // bit width from there, whoever produces the codes later.
  Status MakeActivationCodesUnsigned() {
    for (size_t n = 0; n < graph_->nodes.size(); ++n) {
      Node& q = graph_->nodes[n];
      if (q.op_type != ir::kQuantizeOp || graph_->values[q.inputs[0]].is_constant()) continue;
      const int codes = q.outputs[0];
      SetPrecision(q);
      if (is_output_[codes] || consumers_[codes].empty()) continue;
      bool only_dequantized = true;
      for (int c : consumers_[codes])
        only_dequantized &= graph_->nodes[c].op_type == ir::kDequantizeOp;
      if (!only_dequantized) continue;
      auto p = ir::ReadQuantParams(*graph_, q);
      if (!p.ok() || p->bipolar || p->qmax - p->qmin > 255) continue;
      const int64_t offset = p->qmin;
      q.attributes["code_offset"] = ir::Attribute::Int(offset);
      graph_->values[codes].dtype = ir::CodeType(0, p->qmax - p->qmin);
      for (int c : consumers_[codes])
        graph_->nodes[c].attributes["code_offset"] = ir::Attribute::Int(offset);
      SetPrecision(q);
    }
    return Status::Ok();
  }

  void SetPrecision(const Node& q) {
    auto p = ir::ReadQuantParams(*graph_, q);
    if (p.ok()) graph_->values[q.outputs[0]].precision = ir::CodesPrecision(*p);
  }

  // ---- 2. pads move behind the quantizer into the convolutions ----------
  Status HoistPadsIntoConvolutions() {
    for (size_t n = 0; n < graph_->nodes.size(); ++n) {
      Node& q = graph_->nodes[n];
      if (q.op_type != ir::kQuantizeOp) continue;
      const int padded = q.inputs[0];
      const Node* pad = Producer(padded);
      if (pad == nullptr || pad->op_type != "Pad" || !SoleUse(padded)) continue;
      const std::optional<SpatialPad> spatial = ReadSpatialPad(*graph_, *pad);
      if (!spatial) continue;
      const float fill = spatial->fill;
      const Value& x = graph_->values[pad->inputs[0]];
      auto params = ir::ReadQuantParams(*graph_, q);
      if (!params.ok() || !params->per_tensor()) continue;
      // The pad must stay real zero after quantization: Dequantize(Quantize(fill)) == 0.
      if (params->DequantizeValue(params->QuantizeValue(fill, 0), 0) != 0.0f) continue;
      // Every reader of the codes is a Dequantize read only as a Conv's input 0.
      const int codes = q.outputs[0];
      if (is_output_[codes]) continue;
      std::vector<int> convs;
      bool only_convs = true;
      for (int d : consumers_[codes]) {
        const Node& dq = graph_->nodes[d];
        if (dq.op_type != ir::kDequantizeOp || is_output_[dq.outputs[0]]) {
          only_convs = false;
          break;
        }
        for (int c : consumers_[dq.outputs[0]]) {
          const Node& conv = graph_->nodes[c];
          if (conv.op_type != "Conv" || conv.inputs[0] != dq.outputs[0] ||
              conv.inputs[1] == dq.outputs[0] ||
              (conv.inputs.size() > 2 && conv.inputs[2] == dq.outputs[0]))
            only_convs = false;
          else
            convs.push_back(c);
        }
      }
      if (!only_convs || convs.empty()) continue;
      // Rewire: Quantize reads the unpadded tensor; shapes of the codes and
      // of their dequantized copies shrink back; the convs pad instead.
      q.inputs[0] = pad->inputs[0];
      Kill(producer_[padded]);
      graph_->values[codes].shape = x.shape;
      for (int d : consumers_[codes]) graph_->values[graph_->nodes[d].outputs[0]].shape = x.shape;
      for (int c : convs) {
        Node& conv = graph_->nodes[c];
        std::vector<int64_t> conv_pads = conv.GetInts("pads", {0, 0, 0, 0});
        for (int i = 0; i < 4; ++i) conv_pads[i] += spatial->pads[i];
        conv.attributes["pads"] = ir::Attribute::Ints(conv_pads);
      }
    }
    RemoveDead();
    return Status::Ok();
  }

  // ---- 2b. nearest Resize of a dequantized tensor resizes the codes ---------
  // Resize_nearest(Dequantize(c)) == Dequantize(Resize_nearest(c)): the
  // Resize reads u8 codes and a Dequantize follows it, so a quantized conv
  // behind it sees codes.
  Status PushDequantizeThroughNearestResize() {
    const size_t count = graph_->nodes.size();
    for (size_t n = 0; n < count; ++n) {
      Node& resize = graph_->nodes[n];
      if ((resize.op_type != "Resize" && resize.op_type != "Upsample") ||
          resize.GetString("mode", "nearest") != "nearest")
        continue;
      QuantParams params;
      const int codes = CodesBehind(resize.inputs[0], &params);
      if (codes < 0 || graph_->values[codes].dtype != ir::DataType::kUInt8) continue;
      const Node& dq = *Producer(resize.inputs[0]);
      Node dequantize = dq;
      const int float_out = resize.outputs[0];
      Value resized = graph_->values[codes];
      resized.name = graph_->UniqueName(resize.name + "/codes");
      resized.shape = graph_->values[float_out].shape;
      const int resized_id = graph_->AddValue(std::move(resized));
      resize.inputs[0] = codes;
      resize.outputs[0] = resized_id;
      dequantize.name = resize.name + "/dequantize";
      dequantize.inputs[0] = resized_id;
      dequantize.outputs = {float_out};
      graph_->nodes.push_back(std::move(dequantize));
    }
    return graph_->TopologicalSort();
  }

  // ---- 3. convolutions ----------------------------------------------------
  Status LowerConv(size_t n) {
    const Node& conv = graph_->nodes[n];
    QuantParams in_params;
    const int codes = CodesBehind(conv.inputs[0], &in_params);
    if (codes < 0) return Status::Ok();
    const Value& codes_value = graph_->values[codes];
    if (codes_value.dtype != ir::DataType::kUInt8 || in_params.code_offset != in_params.qmin)
      return Status::Ok();
    QuantizedConvSpec spec;
    spec.name = conv.name;
    spec.input_shape = codes_value.shape;
    spec.output_shape = graph_->values[conv.outputs[0]].shape;
    spec.group = conv.GetInt("group", 1);
    spec.strides = conv.GetInts("strides", {1, 1});
    spec.pads = conv.GetInts("pads", {0, 0, 0, 0});
    spec.dilations = conv.GetInts("dilations", {1, 1});
    spec.input_scale = in_params.scales[0];
    spec.input_zero_point = in_params.zero_points[0] - static_cast<float>(in_params.code_offset);
    // The Dequantize carries no code range: the bits are the codes' own.
    spec.abits = codes_value.precision.is_codes() ? codes_value.precision.bits : 8;
    // Weights: Dequantize of an integer constant, or a residual pair.
    std::vector<float> first_scales;
    auto weights = ReadQuantizedWeights(*graph_, producer_, conv.inputs[1], &spec, &first_scales);
    if (!weights.ok()) return KeepInFloat(n, weights.status());
    if (!*weights) return Status::Ok();
    const int64_t out_channels = spec.weight_shape[0];
    // Bias: float constant, or Dequantize of an integer constant.
    spec.bias.assign(out_channels, 0.0f);
    if (ir::HasInput(conv, 2)) {
      const int b = conv.inputs[2];
      if (graph_->values[b].is_constant()) {
        LOWBIT_ASSIGN_OR_RETURN(spec.bias, ir::ConstantFloats(*graph_, conv, 2));
      } else {
        const Node* bdq = Producer(b);
        if (bdq == nullptr || bdq->op_type != ir::kDequantizeOp ||
            !graph_->values[bdq->inputs[0]].is_constant())
          return Status::Ok();
        auto bparams = ir::ReadQuantParams(*graph_, *bdq);
        if (!bparams.ok()) return Status::Ok();
        const ir::HostTensor& bq = *graph_->values[bdq->inputs[0]].constant;
        for (int64_t o = 0; o < out_channels && o < bq.size(); ++o)
          spec.bias[o] = bparams->DequantizeValue(static_cast<int64_t>(bq.at(o)), o);
        // An int32 bias at the accumulator's scale (s_in * s_w[m], zero
        // point 0: what QDQ and QCDQ exports write) is added to the exact
        // sums, as an integer convolution of the graph does.
        // A residual pair's accumulator counts units of s_in * s2[m]: a
        // bias at s_in * s1[m] (what the pair's exports write) is
        // multiplier[m] of those units per code.
        // Per channel: a channel whose bias is not at that scale, or whose
        // codes reach 2^30 (a channel of near-zero weights, whose scale makes
        // the bias codes huge), keeps its float bias (bias_codes[m] = 0) and
        // the others stay exact: one such channel used to send the whole
        // layer's bias to float, where float(s) * scale + bias cancels and
        // flipped codes at rounding ties (the SSD's first depthwise conv).
        if (bq.size() == out_channels) {
          spec.bias_codes.assign(out_channels, 0);
          for (int64_t o = 0; o < out_channels; ++o) {
            const float scale = bparams->scale(o), s_in = in_params.scales[0];
            int64_t units = 0;
            if (scale == s_in * spec.weight_scales[o])
              units = 1;
            else if (spec.residual() && scale == s_in * first_scales[o])
              units = spec.residual_multiplier[o];
            const double code = (bq.at(o) + bparams->code_offset) * double(units);
            if (units != 0 && bparams->zero_point(o) == 0.0f && std::abs(code) < double(1 << 30))
              spec.bias_codes[o] = static_cast<int64_t>(code);
          }
        }
      }
      if (static_cast<int64_t>(spec.bias.size()) != out_channels) return Status::Ok();
    }
    spec.activation_attributes = conv.attributes;

    // The epilogue absorbs what follows the conv, each step the sole reader
    // of the one before: a per-channel Mul and Add (a BatchNormalization
    // folded after quantization), one activation (Relu, LeakyRelu, Clip),
    // and a Quantize whose rounding the kernels' epilogue reproduces; the
    // output is u8 codes then, else float.
    int y = conv.outputs[0];
    std::vector<int> absorbed;
    bool has_activation = conv.has("lowbit_activation");
    auto sole_reader = [&](int value) -> const Node* {
      return SoleUse(value) ? &graph_->nodes[consumers_[value][0]] : nullptr;
    };
    auto channel_constant = [&](const Node& op) -> std::optional<std::vector<float>> {
      if (op.inputs.size() != 2) return std::nullopt;
      const int other = op.inputs[0] == y ? op.inputs[1] : op.inputs[0];
      const Value& c = graph_->values[other];
      if (!c.is_constant() || !c.constant->is_float()) return std::nullopt;
      const int64_t n = c.constant->size();
      const Shape& sh = c.shape;
      const bool per_channel = n == out_channels && (sh.size() == 3 || sh.size() == 4) &&
                               NumElements(sh) == n && sh[sh.size() - 1] == 1 &&
                               sh[sh.size() - 2] == 1;
      if (n != 1 && !per_channel) return std::nullopt;
      std::vector<float> v = c.constant->floats;
      if (n == 1) v.assign(out_channels, v[0]);
      return v;
    };
    if (const Node* mul = sole_reader(y); mul && mul->op_type == "Mul" && !has_activation) {
      if (auto m = channel_constant(*mul)) {
        spec.bias_codes.clear();  // the bias is rescaled: float from here on
        for (int64_t o = 0; o < out_channels; ++o) {
          spec.weight_scales[o] *= (*m)[o];
          spec.bias[o] *= (*m)[o];
        }
        absorbed.push_back(consumers_[y][0]);
        y = mul->outputs[0];
      }
    }
    if (const Node* add = sole_reader(y); add && add->op_type == "Add" && !has_activation) {
      if (auto a = channel_constant(*add)) {
        spec.bias_codes.clear();
        for (int64_t o = 0; o < out_channels; ++o) spec.bias[o] += (*a)[o];
        for (const auto& [key, attribute] : add->attributes)
          if (key.rfind("lowbit_", 0) == 0) spec.activation_attributes[key] = attribute;
        has_activation = add->has("lowbit_activation");
        absorbed.push_back(consumers_[y][0]);
        y = add->outputs[0];
      }
    }
    if (const Node* act = sole_reader(y); act && !has_activation && act->inputs[0] == y) {
      if (auto fused = FusedActivationAttributes(*graph_, *act)) {
        for (auto& [key, attribute] : *fused) spec.activation_attributes[key] = attribute;
        absorbed.push_back(consumers_[y][0]);
        y = act->outputs[0];
      }
    }
    int out_quantize = -1;
    if (const Node* q = sole_reader(y); q && q->op_type == ir::kQuantizeOp) {
      auto p = ir::ReadQuantParams(*graph_, *q);
      if (p.ok() && EpilogueCanQuantize(*p, graph_->values[q->outputs[0]])) {
        out_quantize = consumers_[y][0];
        spec.out_codes = true;
        spec.out_scale = p->scales[0];
        spec.out_zero_point = static_cast<int32_t>(p->zero_points[0]) - p->code_offset;
        spec.out_bits = p->code_bits();
      }
    }
    auto lowered = BuildQuantizedConv(spec);
    if (!lowered.ok()) return KeepInFloat(n, lowered.status());
    Node node = std::move(lowered).value();
    node.inputs[0] = codes;
    const int packed = graph_->AddConstant(graph_->UniqueName(conv.name + "/qweights"),
                                           std::move(spec.packed_weights));
    const int scale =
        graph_->AddConstant(graph_->UniqueName(conv.name + "/qscale"),
                            ir::HostTensor::Floats({out_channels}, spec.epilogue_scale));
    const int bias =
        graph_->AddConstant(graph_->UniqueName(conv.name + "/qbias"),
                            ir::HostTensor::Floats({out_channels}, spec.epilogue_bias));
    node.inputs[1] = packed;
    node.inputs[2] = scale;
    node.inputs[3] = bias;
    if (spec.residual()) {
      node.inputs[4] = graph_->AddConstant(graph_->UniqueName(conv.name + "/qresidual"),
                                           std::move(spec.packed_residual));
      std::vector<int64_t> multiplier(spec.residual_multiplier.begin(),
                                      spec.residual_multiplier.end());
      node.inputs[5] = graph_->AddConstant(
          graph_->UniqueName(conv.name + "/qmultiplier"),
          ir::HostTensor::Ints({out_channels}, std::move(multiplier), ir::DataType::kInt32));
    }
    for (int a : absorbed) Kill(a);
    if (out_quantize >= 0) {
      node.outputs = {graph_->nodes[out_quantize].outputs[0]};
      Kill(out_quantize);
    } else {
      node.outputs = {y};
    }
    graph_->nodes[n] = std::move(node);  // the Conv's slot keeps the order valid
    return Status::Ok();
  }

  // The Conv stays in float; `why` is recorded on it (inspect shows it).
  Status KeepInFloat(size_t n, const Status& why) {
    graph_->nodes[n].attributes[ops::kNotLoweredAttribute] = ir::Attribute::String(why.message());
    return Status::Ok();
  }

  static bool EpilogueCanQuantize(const QuantParams& p, const Value& codes) {
    if (!p.per_tensor() || p.bipolar || p.zero_points.size() != 1) return false;
    if (codes.dtype != ir::DataType::kUInt8 || p.code_min() != 0) return false;
    const int bits = p.code_bits();
    if (p.code_max() != (int64_t(1) << bits) - 1) return false;
    const float zp = p.zero_points[0];
    if (zp != std::floor(zp)) return false;
    // The epilogue rounds half to even, then adds the zero point.
    if (p.rounding != ir::Rounding::kHalfEven) return false;
    if (p.zero_point_first && static_cast<int64_t>(zp) % 2 != 0) return false;
    return true;
  }

  // ---- 4. quantizers over codes -------------------------------------------
  // What a float value is, traced back to integer codes: codes c, then an
  // optional MaxPool, then monotone element-wise ops (chain[0] nearest the
  // value). Max commutes with monotone non-decreasing maps, so
  //   Quantize(f(MaxPool(Dequantize(c)))) == table(MaxPool(c))
  // for table = Quantize . f . Dequantize, wherever the MaxPool sits among
  // the ops. The float ops stay for readers that still need them.
  struct Trace {
    int codes = -1;
    QuantParams params;  // of the Dequantize
    std::vector<const Node*> chain;
    const Node* pool = nullptr;
  };
  bool TraceToCodes(int value, Trace* trace) const {
    while (true) {
      const Node* p = Producer(value);
      if (p == nullptr) return false;
      if (p->op_type == ir::kDequantizeOp) break;
      if (p->op_type == "MaxPool" && trace->pool == nullptr && p->outputs.size() == 1 &&
          p->GetInt("ceil_mode", 0) == 0) {
        trace->pool = p;
      } else if (IsTableOp(*p)) {
        trace->chain.push_back(p);
      } else {
        return false;
      }
      value = p->inputs[0];
    }
    trace->codes = CodesBehind(value, &trace->params);
    if (trace->codes < 0) return false;
    const ir::DataType type = graph_->values[trace->codes].dtype;
    if (type != ir::DataType::kUInt8 && type != ir::DataType::kInt8)
      return false;  // tables are 8-bit
    return trace->pool == nullptr || graph_->values[trace->codes].dtype == ir::DataType::kUInt8;
  }

  Status LowerQuantize(size_t n) {
    const Node& q = graph_->nodes[n];
    if (dead_.count(static_cast<int>(n))) return Status::Ok();
    auto out_params = ir::ReadQuantParams(*graph_, q);
    if (!out_params.ok() || !out_params->per_tensor() || out_params->bipolar) return Status::Ok();
    const Value& out_value = graph_->values[q.outputs[0]];
    if (out_value.dtype != ir::DataType::kUInt8 && out_value.dtype != ir::DataType::kInt8)
      return Status::Ok();
    const Node* producer = Producer(q.inputs[0]);
    if (producer == nullptr) return Status::Ok();
    if (producer->op_type == "Concat") return LowerConcat(n, *out_params);
    if (producer->op_type == "Add") return LowerAdd(n);
    Trace trace;
    if (!TraceToCodes(q.inputs[0], &trace)) return Status::Ok();
    std::vector<int64_t> table;
    if (!MakeTable(trace, *out_params, out_value.dtype, &table)) return Status::Ok();
    const int source = PooledCodes(trace);
    if (table.empty() && !is_output_[q.outputs[0]] &&
        graph_->values[source].dtype == out_value.dtype) {
      // Same codes: readers of the Quantize read them directly.
      ReplaceUses(q.outputs[0], source);
      Kill(n);
      return Status::Ok();
    }
    graph_->nodes[n] = TableNode(q.name + "/table", source, q.outputs[0], std::move(table),
                                 graph_->values[source].dtype);
    return Status::Ok();
  }

  // The trace's codes, pooled on codes when it went through a MaxPool (a new
  // node appended; the topological sort at the end places it).
  int PooledCodes(const Trace& trace) {
    if (trace.pool == nullptr) return trace.codes;
    Value pooled = graph_->values[trace.codes];
    pooled.name = graph_->UniqueName(trace.pool->name + "/codes");
    pooled.shape = graph_->values[trace.pool->outputs[0]].shape;
    pooled.constant.reset();
    const int id = graph_->AddValue(std::move(pooled));
    Node node = *trace.pool;
    node.name = graph_->values[id].name;
    node.inputs = {trace.codes};
    node.outputs = {id};
    graph_->nodes.push_back(std::move(node));
    return id;
  }

  static Node TableNode(const std::string& name, int in, int out, std::vector<int64_t> table,
                        ir::DataType in_type) {
    if (table.empty()) {  // identity between different code types
      for (int code = 0; code < 256; ++code)
        table.push_back(in_type == ir::DataType::kInt8 ? static_cast<int8_t>(code) : code);
    }
    Node node;
    node.op_type = "lowbit.CodeTable";
    node.name = name;
    node.inputs = {in};
    node.outputs = {out};
    node.attributes["table"] = ir::Attribute::Ints(std::move(table));
    return node;
  }

  static bool IsTableOp(const Node& node) {
    static const std::set<std::string> kOps = {"Relu", "LeakyRelu", "Clip", "Sigmoid"};
    return kOps.count(node.op_type) != 0 && !node.has("lowbit_activation");
  }

  // Codes of the trace through its float chain into codes of `out`;
  // identity tables are returned empty.
  bool MakeTable(const Trace& trace, const QuantParams& out, ir::DataType out_type,
                 std::vector<int64_t>* table) const {
    const QuantParams& in = trace.params;
    const ir::DataType in_type = graph_->values[trace.codes].dtype;
    const int64_t lo = in_type == ir::DataType::kInt8 ? -128 : 0;
    const int64_t hi = in_type == ir::DataType::kInt8 ? 127 : 255;
    // Codes that can occur: the codes' own range (a Dequantize has none).
    const ir::Precision& precision = graph_->values[trace.codes].precision;
    int64_t used_lo = lo, used_hi = hi;
    if (precision.is_codes() && !precision.is_signed && precision.bits < 8)
      used_lo = 0, used_hi = (int64_t(1) << precision.bits) - 1;
    bool identity = in_type == out_type;
    table->assign(256, 0);
    for (int64_t code = lo; code <= hi; ++code) {
      float v = in.DequantizeValue(code, 0);
      for (auto it = trace.chain.rbegin(); it != trace.chain.rend(); ++it) {
        auto applied = ApplyUnary(**it, v);
        if (!applied.ok()) return false;
        v = *applied;
      }
      const int64_t r = out.QuantizeValue(v, 0);
      (*table)[static_cast<uint8_t>(code)] = r;
      if (code >= used_lo && code <= used_hi) identity &= r == code;
    }
    if (identity) table->clear();
    return true;
  }

  StatusOr<float> ApplyUnary(const Node& node, float v) const {
    if (node.op_type == "Relu") return v < 0.0f ? 0.0f : v;
    if (node.op_type == "LeakyRelu") return v < 0.0f ? v * node.GetFloat("alpha", 0.01f) : v;
    if (node.op_type == "Sigmoid") return 1.0f / (1.0f + std::exp(-v));
    if (node.op_type == "Clip") {
      const auto bounds = ClipBounds(*graph_, node);
      if (!bounds) return Unimplemented(node.Describe() + ": bounds computed at run time");
      return v < bounds->first ? bounds->first : (v > bounds->second ? bounds->second : v);
    }
    return Unimplemented(node.op_type);
  }

  // Quantize(Concat(x_i)) with every x_i traced to codes: a Concat of the
  // codes, each through its table first unless that is the identity.
  // Quantize(Add(Dequantize(a), Dequantize(b))), same shapes, per-tensor
  // 8-bit codes: one lowbit.QAdd (ops/codes.cc) computing each element as
  // the float kernels would. The Add's fused Relu / Clip comes along.
  Status LowerAdd(size_t n) {
    const Node& q = graph_->nodes[n];
    const Node& add = *Producer(q.inputs[0]);
    if (add.inputs.size() != 2) return Status::Ok();
    const std::string activation = add.GetString("lowbit_activation", "");
    if (!activation.empty() && activation != "relu" && activation != "clip") return Status::Ok();
    QuantParams pa, pb;
    const int a = CodesBehind(add.inputs[0], &pa), b = CodesBehind(add.inputs[1], &pb);
    if (a < 0 || b < 0) return Status::Ok();
    const Value &va = graph_->values[a], &vb = graph_->values[b];
    const bool eight_bit = va.dtype == ir::DataType::kUInt8 || va.dtype == ir::DataType::kInt8;
    if (!eight_bit || va.dtype != vb.dtype || va.shape != vb.shape) return Status::Ok();
    Node node;
    node.op_type = "lowbit.QAdd";
    node.name = add.name + "/codes";
    node.inputs = {a, b, q.inputs[1], ir::HasInput(q, 2) ? q.inputs[2] : ir::kNoValue};
    node.outputs = {q.outputs[0]};
    node.attributes = q.attributes;  // the output quantizer's qmin, qmax, rounding ...
    for (const auto& [key, attribute] : add.attributes)
      if (key.rfind("lowbit_", 0) == 0) node.attributes[key] = attribute;
    node.attributes["a_scale"] = ir::Attribute::Float(pa.scales[0]);
    node.attributes["a_zero"] =
        ir::Attribute::Int(static_cast<int64_t>(pa.zero_points[0]) - pa.code_offset);
    node.attributes["b_scale"] = ir::Attribute::Float(pb.scales[0]);
    node.attributes["b_zero"] =
        ir::Attribute::Int(static_cast<int64_t>(pb.zero_points[0]) - pb.code_offset);
    graph_->nodes[n] = std::move(node);
    return Status::Ok();
  }

  // A Concat read by several quantizers with the same parameters (one per
  // consumer conv, as exports write them) is concatenated once: the later
  // quantizers read the first one's codes.
  Status LowerConcat(size_t n, const QuantParams& out_params) {
    const Node& q = graph_->nodes[n];
    const Node& concat = *Producer(q.inputs[0]);
    const ir::DataType out_type = graph_->values[q.outputs[0]].dtype;
    const auto key = std::make_tuple(q.inputs[0], out_params.scales[0], out_params.zero_points[0],
                                     out_params.qmin, out_params.qmax, out_params.code_offset,
                                     static_cast<int>(out_params.rounding),
                                     out_params.zero_point_first, static_cast<int>(out_type));
    if (auto it = concatenated_.find(key); it != concatenated_.end()) {
      if (is_output_[q.outputs[0]]) return Status::Ok();
      ReplaceUses(q.outputs[0], it->second);
      Kill(n);
      return Status::Ok();
    }
    std::vector<Trace> traces(concat.inputs.size());
    std::vector<std::vector<int64_t>> tables(concat.inputs.size());
    for (size_t i = 0; i < concat.inputs.size(); ++i) {
      if (!TraceToCodes(concat.inputs[i], &traces[i])) return Status::Ok();
      if (!MakeTable(traces[i], out_params, out_type, &tables[i])) return Status::Ok();
    }
    std::vector<int> inputs;
    for (size_t i = 0; i < traces.size(); ++i) {
      int codes = PooledCodes(traces[i]);
      const ir::DataType in_type = graph_->values[codes].dtype;
      if (!tables[i].empty() || in_type != out_type) {
        Value v = graph_->values[codes];
        v.name = graph_->UniqueName(v.name + "/requantized");
        v.dtype = out_type;
        v.precision = graph_->values[q.outputs[0]].precision;
        v.constant.reset();
        const int requantized = graph_->AddValue(std::move(v));
        graph_->nodes.push_back(TableNode(graph_->values[requantized].name, codes, requantized,
                                          std::move(tables[i]), in_type));
        codes = requantized;
      }
      inputs.push_back(codes);
    }
    Node node;
    node.op_type = "Concat";
    node.name = concat.name + "/codes";
    node.inputs = inputs;
    node.outputs = {q.outputs[0]};
    node.attributes = concat.attributes;
    concatenated_[key] = q.outputs[0];
    graph_->nodes[n] = std::move(node);
    return Status::Ok();
  }

  Graph* graph_;
  // (Concat output, the quantizer's parameters) -> codes made for them.
  std::map<std::tuple<int, float, float, int64_t, int64_t, int64_t, int, bool, int>, int>
      concatenated_;
  std::vector<int> producer_;
  std::vector<std::vector<int>> consumers_;
  std::vector<char> is_output_;
  std::set<int> dead_;
};

}  // namespace

Status LowerQuantizedOps(ir::Graph* graph) {
  LOWBIT_RETURN_IF_ERROR(Lowerer(graph).Run());
  return EliminateDeadNodes(graph);
}

}  // namespace lowbit::engine::passes
