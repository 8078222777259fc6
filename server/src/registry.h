// The models being served, shared by every front end (lowbit.v1.Detector,
// lowbit.v1.Admin, KServe v2). Each model name maps to at most one served
// version; a reload builds the new version beside the old one and swaps it
// in atomically. A frame holds the ServedModel it was submitted to until it
// is answered, so frames already queued finish on the old version, whose
// scheduler is then drained and stopped off the request path.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "clock.h"
#include "lowbit/engine/status.h"
#include "metrics.h"
#include "model_repository.h"
#include "scheduler.h"

namespace lowbit::server {

// One loaded version of one model.
struct ServedModel {
  ModelSpec spec;
  int64_t version = 0;              // load counter of this name in this process, from 1
  ModelMetrics* metrics = nullptr;  // owned by ServerMetrics, shared by the name's versions
  std::unique_ptr<Scheduler> scheduler;
  // Set once a newer version (or an unload) replaced this one. Its scheduler
  // then refuses frames with UNAVAILABLE: a front end that sees both looks
  // the model up again instead of failing the frame.
  std::atomic<bool> retired{false};
};

enum class ModelState { kReady, kFailed };

// One repository entry as ListModels / ModelReady report it.
struct ModelStatus {
  std::string name;
  ModelState state = ModelState::kFailed;
  std::string message;  // why it failed; empty when ready
  std::shared_ptr<const ServedModel> served;  // null unless ready
};

enum class ReloadAction { kUnchanged, kLoaded, kReloaded, kUnloaded, kFailed };

struct ReloadResult {
  std::string model;
  ReloadAction action = ReloadAction::kUnchanged;
  int64_t version = 0;  // served now; 0 if none
  std::string message;
  int64_t load_ms = 0;
};

struct RegistryOptions {
  std::string repository;     // --model-repo
  std::string default_model;  // empty: "nanodet-g" if ready, else the first ready name
  SchedulerOptions scheduler;
  // Per-model config latency_objective_ms overrides scheduler.latency_objective when > 0.
};

class ModelRegistry {
 public:
  // Loads every model of the repository. Fails only if the repository cannot
  // be read, no model loads, or --default-model names a model that did not
  // load; a model that fails is logged, counted and reported FAILED.
  // `metrics`, `clock` and `budget` must outlive the registry.
  static StatusOr<std::unique_ptr<ModelRegistry>> Create(const RegistryOptions& options,
                                                         ServerMetrics& metrics, Clock& clock,
                                                         DecodeBudget* budget);
  // Builds a registry from models already loaded (tests, fake backends).
  static StatusOr<std::unique_ptr<ModelRegistry>> FromSpecs(const RegistryOptions& options,
                                                            std::vector<ModelSpec> specs,
                                                            ServerMetrics& metrics, Clock& clock,
                                                            DecodeBudget* budget);
  ~ModelRegistry();  // Shutdown()

  // Empty `name`: the default model. Null if not ready.
  std::shared_ptr<ServedModel> Find(const std::string& name) const;
  // Every entry, ready or failed, sorted by name.
  std::vector<ModelStatus> List() const;
  // Ready models' names, "a, b, c".
  std::string Names() const;
  std::string default_model() const;

  // Re-reads the repository (all models, or just `model`) as Admin.ReloadModels
  // describes; blocks until every load and swap is done. Serialised: one
  // reload at a time.
  std::vector<ReloadResult> Reload(const std::string& model = "", bool force = false);

  // Polls the repository every `interval` (0: stop polling) and reloads what changed.
  void StartPolling(std::chrono::milliseconds interval);

  // Stops polling, then drains and stops every version's scheduler. Idempotent.
  void Shutdown();
};

}  // namespace lowbit::server
