// ModelRegistry: look-ups, a repository with broken models, and version
// swaps while frames are in flight (fake engine), then the same on a real
// temporary repository (BlazeFace from models/).
#include "registry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "fake_backend.h"
#include "metrics_test_util.h"

namespace lowbit::server {
namespace {

namespace fs = std::filesystem;
using testing::FakeBackend;
using testing::ImageWithId;
using testing::MetricValue;

// Every outcome, by frame id.
class Outcomes {
 public:
  CompletionCallback For(int id) {
    return [this, id](FrameOutcome outcome) {
      std::lock_guard<std::mutex> lock(mu_);
      statuses_[id].push_back(outcome.status);
      ++total_;
      cv_.notify_all();
    };
  }
  // False if `count` outcomes did not arrive within 10 s.
  bool AwaitTotal(int count) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return total_ >= count; });
  }
  int total() {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }
  // Ids whose outcome was not OK, or that completed more than once.
  std::vector<int> Failures() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<int> failed;
    for (const auto& [id, statuses] : statuses_) {
      if (statuses.size() != 1 || !statuses[0].ok()) failed.push_back(id);
    }
    return failed;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<int, std::vector<Status>> statuses_;
  int total_ = 0;
};

FrameRequest Request(int id, CompletionCallback done) {
  FrameRequest request;
  request.payload.kind = FramePayload::Kind::kImage;
  request.payload.image = ImageWithId(id);
  request.payload.width = id;
  request.payload.height = 1;
  request.received = SteadyClock().Now();
  request.on_complete = std::move(done);
  return request;
}

ModelSpec Spec(const std::string& name, std::shared_ptr<FakeBackend> backend) {
  ModelSpec spec;
  spec.name = name;
  spec.config.set_name(name);
  spec.backend = std::move(backend);
  return spec;
}

RegistryOptions Options(int workers = 1, int max_batch = 2) {
  RegistryOptions options;
  options.scheduler.workers = workers;
  options.scheduler.max_batch = max_batch;
  options.scheduler.batch_timeout = std::chrono::microseconds(0);
  return options;
}

// The frame ids (image widths >= 100) of every batch `backend` ran, in
// order, without the warm-up runs.
std::vector<int> FrameIds(const FakeBackend& backend) {
  std::vector<int> ids;
  for (const std::vector<int>& batch : backend.batches()) {
    for (int id : batch) {
      if (id >= 100) ids.push_back(id);
    }
  }
  return ids;
}

std::vector<int> Range(int first, int last) {
  std::vector<int> ids;
  for (int id = first; id <= last; ++id) ids.push_back(id);
  return ids;
}

// Submits as a front end does: a version refused with UNAVAILABLE that has
// been retired is looked up again.
Status SubmitToCurrent(const ModelRegistry& registry, const std::string& name,
                       FrameRequest request) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    std::shared_ptr<ServedModel> served = registry.Find(name);
    if (!served) return NotFound("no model " + name);
    Status status = served->scheduler->Submit(std::move(request));
    if (status.ok() || status.code() != StatusCode::kUnavailable || !served->retired.load()) {
      return status;
    }
  }
  return Internal("still refused after 1000 look-ups");
}

// The entry of `name`; one named "(not listed)" if there is none, so that a
// test fails on it instead of crashing.
ModelStatus StatusOf(const std::vector<ModelStatus>& models, const std::string& name) {
  for (const ModelStatus& model : models) {
    if (model.name == name) return model;
  }
  ModelStatus missing;
  missing.name = "(not listed)";
  missing.message = "(not listed)";
  return missing;
}

class RegistryTest : public ::testing::Test {
 protected:
  std::unique_ptr<ModelRegistry> Make(std::vector<ModelSpec> specs,
                                      RegistryOptions options = Options()) {
    StatusOr<std::unique_ptr<ModelRegistry>> registry =
        ModelRegistry::FromSpecs(options, std::move(specs), metrics_, SteadyClock(), nullptr);
    EXPECT_TRUE(registry.ok()) << registry.status().ToString();
    return registry.ok() ? std::move(registry).value() : nullptr;
  }

  ServerMetrics metrics_{4};
};

TEST_F(RegistryTest, FindsByNameAndPrefersNanodetAsDefault) {
  auto registry = Make({Spec("alpha", std::make_shared<FakeBackend>()),
                        Spec("nanodet-g", std::make_shared<FakeBackend>()),
                        Spec("zeta", std::make_shared<FakeBackend>())});
  ASSERT_TRUE(registry);
  EXPECT_EQ(registry->default_model(), "nanodet-g");
  ASSERT_TRUE(registry->Find("alpha"));
  EXPECT_EQ(registry->Find("alpha")->spec.name, "alpha");
  EXPECT_EQ(registry->Find("alpha")->version, 1);
  EXPECT_EQ(registry->Find(""), registry->Find("nanodet-g"));
  EXPECT_EQ(registry->Find("missing"), nullptr);
  EXPECT_EQ(registry->Names(), "alpha, nanodet-g, zeta");

  std::vector<ModelStatus> models = registry->List();
  ASSERT_EQ(models.size(), 3u);
  EXPECT_EQ(models[0].name, "alpha");
  EXPECT_EQ(models[2].name, "zeta");
  for (const ModelStatus& model : models) {
    EXPECT_EQ(model.state, ModelState::kReady);
    EXPECT_TRUE(model.message.empty());
    ASSERT_TRUE(model.served);
    EXPECT_EQ(model.served, registry->Find(model.name));
  }
}

TEST_F(RegistryTest, DefaultIsTheFirstReadyNameOrTheOneAskedFor) {
  auto registry = Make({Spec("beta", std::make_shared<FakeBackend>()),
                        Spec("alpha", std::make_shared<FakeBackend>())});
  ASSERT_TRUE(registry);
  EXPECT_EQ(registry->default_model(), "alpha");
  EXPECT_EQ(registry->Find("")->spec.name, "alpha");

  RegistryOptions options = Options();
  options.default_model = "beta";
  auto chosen = Make({Spec("beta", std::make_shared<FakeBackend>()),
                      Spec("alpha", std::make_shared<FakeBackend>())},
                     options);
  ASSERT_TRUE(chosen);
  EXPECT_EQ(chosen->Find("")->spec.name, "beta");

  options.default_model = "gamma";
  StatusOr<std::unique_ptr<ModelRegistry>> unknown = ModelRegistry::FromSpecs(
      options, {Spec("alpha", std::make_shared<FakeBackend>())}, metrics_, SteadyClock(), nullptr);
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.status().message().find("gamma"), std::string::npos);
}

TEST_F(RegistryTest, AModelThatFailsIsReportedAndTheOthersAreServed) {
  auto broken = std::make_shared<FakeBackend>();
  broken->FailCreateSession(Internal("out of memory"));
  auto registry = Make({Spec("good", std::make_shared<FakeBackend>()), Spec("bad", broken)});
  ASSERT_TRUE(registry);
  EXPECT_EQ(registry->Find("bad"), nullptr);
  ASSERT_TRUE(registry->Find("good"));
  EXPECT_EQ(registry->Names(), "good");

  std::vector<ModelStatus> models = registry->List();
  ASSERT_EQ(models.size(), 2u);
  const ModelStatus bad = StatusOf(models, "bad");
  EXPECT_EQ(bad.state, ModelState::kFailed);
  EXPECT_EQ(bad.served, nullptr);
  EXPECT_NE(bad.message.find("out of memory"), std::string::npos) << bad.message;
  EXPECT_EQ(
      MetricValue(metrics_, "lowbit_model_loads_total", {{"model", "bad"}, {"result", "failed"}}),
      1);
  EXPECT_EQ(MetricValue(metrics_, "lowbit_model_ready", {{"model", "bad"}}), 0);
  EXPECT_EQ(MetricValue(metrics_, "lowbit_model_ready", {{"model", "good"}}), 1);

  // The default may not be a model that failed, nor may every model fail.
  RegistryOptions options = Options();
  options.default_model = "bad";
  StatusOr<std::unique_ptr<ModelRegistry>> failed_default = ModelRegistry::FromSpecs(
      options, {Spec("good", std::make_shared<FakeBackend>()), Spec("bad", broken)}, metrics_,
      SteadyClock(), nullptr);
  ASSERT_FALSE(failed_default.ok());
  EXPECT_NE(failed_default.status().message().find("out of memory"), std::string::npos);
  StatusOr<std::unique_ptr<ModelRegistry>> none =
      ModelRegistry::FromSpecs(Options(), {Spec("bad", broken)}, metrics_, SteadyClock(), nullptr);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("bad: "), std::string::npos);
}

TEST_F(RegistryTest, FramesWaitingOnTheOldVersionFinishThereAndNewFramesGoToTheNewOne) {
  auto old_backend = std::make_shared<FakeBackend>();
  auto registry = Make({Spec("m", old_backend)});
  ASSERT_TRUE(registry);
  std::shared_ptr<ServedModel> first = registry->Find("m");
  ASSERT_TRUE(first);
  EXPECT_EQ(first->version, 1);
  EXPECT_FALSE(first->retired.load());

  // One batch of the old version runs (held at the gate), the rest wait.
  Outcomes old_frames;
  old_backend->CloseGate();
  for (int id = 101; id <= 106; ++id) {
    ASSERT_TRUE(first->scheduler->Submit(Request(id, old_frames.For(id))).ok());
  }
  old_backend->AwaitBlockedRuns(1);

  // The swap does not wait for the old version to drain.
  auto new_backend = std::make_shared<FakeBackend>();
  ReloadResult swapped = registry->Install(Spec("m", new_backend));
  EXPECT_EQ(swapped.action, ReloadAction::kReloaded) << swapped.message;
  EXPECT_EQ(swapped.version, 2);
  EXPECT_TRUE(first->retired.load());
  std::shared_ptr<ServedModel> second = registry->Find("m");
  ASSERT_TRUE(second);
  EXPECT_NE(second, first);
  EXPECT_EQ(second->version, 2);
  EXPECT_FALSE(second->retired.load());
  EXPECT_EQ(registry->List().at(0).served, second);

  Outcomes new_frames;
  for (int id = 201; id <= 204; ++id) {
    ASSERT_TRUE(SubmitToCurrent(*registry, "m", Request(id, new_frames.For(id))).ok());
  }
  ASSERT_TRUE(new_frames.AwaitTotal(4));
  EXPECT_EQ(old_frames.total(), 0);  // still held by the old version's gate

  old_backend->OpenGate();
  ASSERT_TRUE(old_frames.AwaitTotal(6));
  EXPECT_TRUE(old_frames.Failures().empty());
  EXPECT_TRUE(new_frames.Failures().empty());
  EXPECT_EQ(FrameIds(*old_backend), Range(101, 106));
  EXPECT_EQ(FrameIds(*new_backend), Range(201, 204));

  // The retired version refuses new frames once drained, and is released by
  // the registry (only this test's reference keeps it).
  Status refused = Status::Ok();
  Outcomes late;
  for (int i = 0; i < 500 && refused.ok(); ++i) {
    refused = first->scheduler->Submit(Request(300 + i, late.For(300 + i)));
    if (refused.ok()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable);
  std::weak_ptr<ServedModel> weak = first;
  first.reset();
  for (int i = 0; i < 500 && !weak.expired(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(weak.expired());
}

TEST_F(RegistryTest, SwapsUnderContinuousLoadFailNoFrame) {
  auto registry = Make({Spec("m", std::make_shared<FakeBackend>())}, Options(2, 4));
  ASSERT_TRUE(registry);
  Outcomes outcomes;
  std::atomic<bool> stop{false};
  std::atomic<int> submitted{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const int id = 1000 + t * 1000000 + i;
        Status status = SubmitToCurrent(*registry, "m", Request(id, outcomes.For(id)));
        if (status.ok()) {
          ++submitted;
        } else if (status.code() == StatusCode::kResourceExhausted) {
          std::this_thread::yield();  // the queue is full: admission, not a swap failure
        } else {
          ++refused;
        }
      }
    });
  }
  for (int swap = 0; swap < 8; ++swap) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ReloadResult result = registry->Install(Spec("m", std::make_shared<FakeBackend>()));
    EXPECT_EQ(result.action, ReloadAction::kReloaded);
    EXPECT_EQ(result.version, swap + 2);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop.store(true);
  for (std::thread& sender : senders) sender.join();
  ASSERT_TRUE(outcomes.AwaitTotal(submitted.load()));
  EXPECT_GT(submitted.load(), 100);
  EXPECT_EQ(refused.load(), 0);
  EXPECT_TRUE(outcomes.Failures().empty());
  EXPECT_EQ(registry->Find("m")->version, 9);
}

TEST_F(RegistryTest, ShutdownRunsWaitingFramesThenRefusesAndIsIdempotent) {
  auto backend = std::make_shared<FakeBackend>();
  auto registry = Make({Spec("m", backend)});
  ASSERT_TRUE(registry);
  Outcomes outcomes;
  backend->CloseGate();
  for (int id = 101; id <= 103; ++id) {
    ASSERT_TRUE(registry->Find("m")->scheduler->Submit(Request(id, outcomes.For(id))).ok());
  }
  backend->AwaitBlockedRuns(1);
  std::thread shutdown([&] { registry->Shutdown(); });
  backend->OpenGate();
  shutdown.join();
  EXPECT_EQ(outcomes.total(), 3);
  EXPECT_TRUE(outcomes.Failures().empty());

  registry->Shutdown();
  std::shared_ptr<ServedModel> served = registry->Find("m");
  ASSERT_TRUE(served);
  EXPECT_FALSE(served->retired.load());  // nothing newer: a front end must not retry
  Outcomes late;
  EXPECT_EQ(served->scheduler->Submit(Request(104, late.For(104))).code(),
            StatusCode::kUnavailable);
  EXPECT_TRUE(registry->Reload().empty());
  EXPECT_EQ(registry->Install(Spec("m", std::make_shared<FakeBackend>())).action,
            ReloadAction::kFailed);
  EXPECT_EQ(registry->Find("m"), served);
}

// A real repository in a temporary directory; BlazeFace is the smallest model.
class RepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    source_ = fs::absolute("models/blazeface");
    ASSERT_TRUE(fs::exists(source_ / "model.onnx"))
        << source_ << " is missing: deploy/models/fetch-models.sh fetches it";
    std::random_device random;
    root_ = fs::temp_directory_path() / ("lowbit-registry-test-" + std::to_string(random()));
    fs::create_directories(root_);
  }
  void TearDown() override {
    registry_.reset();
    std::error_code error;
    fs::remove_all(root_, error);
  }

  // A copy of BlazeFace made of symlinks to its files.
  void AddGood(const std::string& name) {
    fs::create_directories(root_ / name);
    for (const char* file : {"config.pbtxt", "model.onnx", "labels.txt"}) Link(name, file);
  }
  void Link(const std::string& name, const std::string& file) {
    std::error_code error;
    fs::remove(root_ / name / file, error);
    fs::create_symlink(source_ / file, root_ / name / file);
  }
  void Write(const std::string& name, const std::string& file, const std::string& text) {
    std::error_code error;
    fs::remove(root_ / name / file, error);
    std::ofstream(root_ / name / file) << text;
  }

  StatusOr<std::unique_ptr<ModelRegistry>> Create(const std::string& default_model = "") {
    RegistryOptions options = Options(1, 1);
    options.repository = root_.string();
    options.default_model = default_model;
    return ModelRegistry::Create(options, metrics_, SteadyClock(), nullptr);
  }

  std::map<std::string, ReloadResult> ByName(const std::vector<ReloadResult>& results) {
    std::map<std::string, ReloadResult> by_name;
    for (const ReloadResult& result : results) by_name[result.model] = result;
    return by_name;
  }

  fs::path source_;
  fs::path root_;
  ServerMetrics metrics_{1};
  std::unique_ptr<ModelRegistry> registry_;
};

TEST_F(RepositoryTest, BrokenModelsAreReportedAndServedOnceFixed) {
  AddGood("good");
  AddGood("corrupt");
  Write("corrupt", "model.onnx", "this is not an ONNX file");
  AddGood("badconfig");
  Write("badconfig", "config.pbtxt", "input { width: banana }\n");

  StatusOr<std::unique_ptr<ModelRegistry>> created = Create();
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  registry_ = std::move(created).value();
  EXPECT_EQ(registry_->Names(), "good");
  EXPECT_EQ(registry_->default_model(), "good");
  std::vector<ModelStatus> models = registry_->List();
  ASSERT_EQ(models.size(), 3u);
  EXPECT_EQ(StatusOf(models, "good").state, ModelState::kReady);
  const ModelStatus corrupt = StatusOf(models, "corrupt");
  EXPECT_EQ(corrupt.state, ModelState::kFailed);
  EXPECT_NE(corrupt.message.find("model.onnx"), std::string::npos) << corrupt.message;
  const ModelStatus badconfig = StatusOf(models, "badconfig");
  EXPECT_EQ(badconfig.state, ModelState::kFailed);
  EXPECT_NE(badconfig.message.find("config.pbtxt"), std::string::npos) << badconfig.message;
  EXPECT_EQ(registry_->Find("corrupt"), nullptr);
  EXPECT_EQ(MetricValue(metrics_, "lowbit_model_loads_total",
                        {{"model", "corrupt"}, {"result", "failed"}}),
            1);

  // Nothing changed: nothing is loaded again, not even the broken ones.
  std::map<std::string, ReloadResult> same = ByName(registry_->Reload());
  ASSERT_EQ(same.size(), 3u);
  for (const auto& [name, result] : same)
    EXPECT_EQ(result.action, ReloadAction::kUnchanged) << name;
  EXPECT_EQ(same["good"].version, 1);
  EXPECT_EQ(same["corrupt"].version, 0);

  // The corrupt model fixed on disk is picked up; the others are untouched.
  std::shared_ptr<ServedModel> good_v1 = registry_->Find("good");
  Link("corrupt", "model.onnx");
  std::map<std::string, ReloadResult> fixed = ByName(registry_->Reload());
  EXPECT_EQ(fixed["corrupt"].action, ReloadAction::kLoaded) << fixed["corrupt"].message;
  EXPECT_EQ(fixed["corrupt"].version, 1);
  EXPECT_EQ(fixed["good"].action, ReloadAction::kUnchanged);
  EXPECT_EQ(fixed["badconfig"].action, ReloadAction::kUnchanged);
  EXPECT_EQ(StatusOf(registry_->List(), "corrupt").state, ModelState::kReady);
  ASSERT_TRUE(registry_->Find("corrupt"));
  EXPECT_EQ(registry_->Find("good"), good_v1);
  EXPECT_FALSE(good_v1->retired.load());

  Link("badconfig", "config.pbtxt");
  EXPECT_EQ(ByName(registry_->Reload("badconfig"))["badconfig"].action, ReloadAction::kLoaded);
  EXPECT_EQ(registry_->Names(), "badconfig, corrupt, good");
}

TEST_F(RepositoryTest, AFailedReloadKeepsTheServedVersion) {
  AddGood("good");
  StatusOr<std::unique_ptr<ModelRegistry>> created = Create();
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  registry_ = std::move(created).value();
  std::shared_ptr<ServedModel> v1 = registry_->Find("good");
  ASSERT_TRUE(v1);

  Write("good", "model.onnx", "truncated");
  std::vector<ReloadResult> broken = registry_->Reload("good");
  ASSERT_EQ(broken.size(), 1u);
  EXPECT_EQ(broken[0].action, ReloadAction::kFailed);
  EXPECT_EQ(broken[0].version, 1);
  EXPECT_FALSE(broken[0].message.empty());
  ASSERT_EQ(registry_->Find("good"), v1);
  EXPECT_FALSE(v1->retired.load());
  const ModelStatus status = StatusOf(registry_->List(), "good");
  EXPECT_EQ(status.state, ModelState::kReady);
  EXPECT_NE(status.message.find("still served"), std::string::npos) << status.message;

  Link("good", "model.onnx");
  std::vector<ReloadResult> restored = registry_->Reload();
  ASSERT_EQ(restored.size(), 1u);
  EXPECT_EQ(restored[0].action, ReloadAction::kReloaded);
  EXPECT_EQ(restored[0].version, 2);
  EXPECT_TRUE(v1->retired.load());
  ASSERT_TRUE(registry_->Find("good"));
  EXPECT_EQ(registry_->Find("good")->version, 2);
  EXPECT_TRUE(StatusOf(registry_->List(), "good").message.empty());

  // Forced: a new version although nothing changed.
  std::vector<ReloadResult> forced = registry_->Reload("", /*force=*/true);
  ASSERT_EQ(forced.size(), 1u);
  EXPECT_EQ(forced[0].action, ReloadAction::kReloaded);
  EXPECT_EQ(forced[0].version, 3);
}

TEST_F(RepositoryTest, NewDirectoriesLoadAndRemovedOnesUnload) {
  AddGood("a");
  StatusOr<std::unique_ptr<ModelRegistry>> created = Create();
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  registry_ = std::move(created).value();

  AddGood("b");
  std::map<std::string, ReloadResult> added = ByName(registry_->Reload());
  EXPECT_EQ(added["b"].action, ReloadAction::kLoaded);
  EXPECT_EQ(added["a"].action, ReloadAction::kUnchanged);
  std::shared_ptr<ServedModel> a = registry_->Find("a");

  fs::remove_all(root_ / "a");
  std::map<std::string, ReloadResult> removed = ByName(registry_->Reload());
  EXPECT_EQ(removed["a"].action, ReloadAction::kUnloaded);
  EXPECT_EQ(removed["a"].version, 0);
  EXPECT_EQ(registry_->Find("a"), nullptr);
  EXPECT_TRUE(a->retired.load());
  EXPECT_EQ(registry_->Names(), "b");
  EXPECT_EQ(registry_->default_model(), "b");
  EXPECT_EQ(MetricValue(metrics_, "lowbit_model_ready", {{"model", "a"}}), 0);

  std::vector<ReloadResult> unknown = registry_->Reload("nope");
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(unknown[0].action, ReloadAction::kFailed);
  EXPECT_NE(unknown[0].message.find("nope"), std::string::npos);

  // A name's versions keep counting after an unload.
  AddGood("a");
  EXPECT_EQ(ByName(registry_->Reload("a"))["a"].version, 2);
}

TEST_F(RepositoryTest, PollingPicksUpAChange) {
  AddGood("good");
  AddGood("late");
  Write("late", "model.onnx", "not yet");
  StatusOr<std::unique_ptr<ModelRegistry>> created = Create();
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  registry_ = std::move(created).value();
  registry_->StartPolling(std::chrono::milliseconds(50));
  Link("late", "model.onnx");
  for (int i = 0; i < 200 && !registry_->Find("late"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(registry_->Find("late"));
  registry_->Shutdown();  // stops the poller too
}

TEST_F(RepositoryTest, CreateFailsOnlyWhenNothingCanBeServed) {
  StatusOr<std::unique_ptr<ModelRegistry>> empty = Create();
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("config.pbtxt"), std::string::npos);

  AddGood("corrupt");
  Write("corrupt", "model.onnx", "garbage");
  StatusOr<std::unique_ptr<ModelRegistry>> none = Create();
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("corrupt: "), std::string::npos);

  AddGood("good");
  EXPECT_TRUE(Create().ok());
  StatusOr<std::unique_ptr<ModelRegistry>> bad_default = Create("corrupt");
  ASSERT_FALSE(bad_default.ok());
  EXPECT_EQ(bad_default.status().code(), StatusCode::kInvalidArgument);

  RegistryOptions options = Options();
  options.repository = (root_ / "missing").string();
  StatusOr<std::unique_ptr<ModelRegistry>> missing =
      ModelRegistry::Create(options, metrics_, SteadyClock(), nullptr);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace lowbit::server
