#include "registry.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include <spdlog/spdlog.h>

namespace lowbit::server {

namespace {

int64_t MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

// Create's and FromSpecs' verdict on the models they loaded.
Status CheckStartable(const std::vector<ModelStatus>& models, const std::string& default_model,
                      const std::string& source) {
  std::string failures;
  bool any_ready = false;
  for (const ModelStatus& model : models) {
    if (model.state == ModelState::kReady) {
      any_ready = true;
      continue;
    }
    failures += (failures.empty() ? "" : "; ") + model.name + ": " + model.message;
    if (model.name == default_model) {
      return InvalidArgument("--default-model " + default_model +
                             " did not load: " + model.message);
    }
  }
  if (!any_ready) return Unavailable("no model of " + source + " loaded: " + failures);
  if (!default_model.empty()) {
    for (const ModelStatus& model : models) {
      if (model.name == default_model) return Status::Ok();
    }
    return InvalidArgument("--default-model " + default_model + " is not a model of " + source);
  }
  return Status::Ok();
}

}  // namespace

const char* ReloadActionName(ReloadAction action) {
  switch (action) {
    case ReloadAction::kUnchanged:
      return "unchanged";
    case ReloadAction::kLoaded:
      return "loaded";
    case ReloadAction::kReloaded:
      return "reloaded";
    case ReloadAction::kUnloaded:
      return "unloaded";
    case ReloadAction::kFailed:
      return "failed";
  }
  return "?";
}

ModelRegistry::ModelRegistry(const RegistryOptions& options, ServerMetrics& metrics, Clock& clock,
                             DecodeBudget* budget)
    : options_(options), metrics_(metrics), clock_(clock), budget_(budget) {}

ModelRegistry::~ModelRegistry() { Shutdown(); }

StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::Create(const RegistryOptions& options,
                                                               ServerMetrics& metrics, Clock& clock,
                                                               DecodeBudget* budget) {
  LOWBIT_ASSIGN_OR_RETURN(std::vector<std::string> directories,
                          ListModelDirectories(options.repository));
  if (directories.empty()) {
    return NotFound("model repository '" + options.repository +
                    "' has no subdirectory with a config.pbtxt");
  }
  std::unique_ptr<ModelRegistry> registry(new ModelRegistry(options, metrics, clock, budget));
  {
    std::lock_guard<std::mutex> reload_lock(registry->reload_mu_);
    for (const std::string& directory : directories) {
      const std::string name = std::filesystem::path(directory).filename().string();
      registry->LoadAndSwap(name, directory, ModelDirectoryFingerprint(directory));
    }
  }
  LOWBIT_RETURN_IF_ERROR(CheckStartable(registry->List(), options.default_model,
                                        "model repository '" + options.repository + "'"));
  return registry;
}

StatusOr<std::unique_ptr<ModelRegistry>> ModelRegistry::FromSpecs(const RegistryOptions& options,
                                                                  std::vector<ModelSpec> specs,
                                                                  ServerMetrics& metrics,
                                                                  Clock& clock,
                                                                  DecodeBudget* budget) {
  if (specs.empty()) return InvalidArgument("no model to serve");
  std::unique_ptr<ModelRegistry> registry(new ModelRegistry(options, metrics, clock, budget));
  for (ModelSpec& spec : specs) registry->Install(std::move(spec));
  LOWBIT_RETURN_IF_ERROR(CheckStartable(registry->List(), options.default_model, "the models"));
  return registry;
}

StatusOr<std::shared_ptr<ServedModel>> ModelRegistry::Build(ModelSpec spec) {
  if (!spec.backend) return InvalidArgument("model " + spec.name + " has no backend");
  SchedulerOptions scheduler_options = options_.scheduler;
  if (spec.config.latency_objective_ms() > 0) {
    scheduler_options.latency_objective =
        std::chrono::milliseconds(spec.config.latency_objective_ms());
  }
  ModelMetrics& model_metrics = metrics_.ForModel(spec.name);
  // Creates the sessions and warms every batch size up: the version is ready
  // to run frames at full speed before anyone can find it.
  LOWBIT_ASSIGN_OR_RETURN(std::unique_ptr<Scheduler> scheduler,
                          Scheduler::Create(spec.name, *spec.backend, scheduler_options, &clock_,
                                            &model_metrics, budget_));
  auto served = std::make_shared<ServedModel>();
  served->version = ++loads_[spec.name];
  served->spec = std::move(spec);  // the backend stays where the scheduler points
  served->metrics = &model_metrics;
  served->scheduler = std::move(scheduler);
  return served;
}

ReloadResult ModelRegistry::Install(ModelSpec spec) {
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  if (shut_down_) {
    ReloadResult result;
    result.model = spec.name;
    result.action = ReloadAction::kFailed;
    result.message = "the registry is shut down";
    return result;
  }
  const auto start = std::chrono::steady_clock::now();
  const std::string name = spec.name;
  StatusOr<std::shared_ptr<ServedModel>> built = Build(std::move(spec));
  return Publish(name, std::move(built), "", "", MillisecondsSince(start));
}

ReloadResult ModelRegistry::LoadAndSwap(const std::string& name, const std::string& directory,
                                        const std::string& fingerprint) {
  const auto start = std::chrono::steady_clock::now();
  StatusOr<ModelSpec> spec = LoadModelDirectory(directory);
  StatusOr<std::shared_ptr<ServedModel>> built =
      spec.ok() ? Build(std::move(spec).value())
                : StatusOr<std::shared_ptr<ServedModel>>(spec.status());
  return Publish(name, std::move(built), directory, fingerprint, MillisecondsSince(start));
}

ReloadResult ModelRegistry::Publish(const std::string& name,
                                    StatusOr<std::shared_ptr<ServedModel>> built,
                                    const std::string& directory, const std::string& fingerprint,
                                    int64_t load_ms) {
  ReloadResult result;
  result.model = name;
  result.load_ms = load_ms;
  std::shared_ptr<ServedModel> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    Entry& entry = entries_[name];
    if (!directory.empty()) {
      entry.directory = directory;
      entry.fingerprint = fingerprint;
    }
    if (built.ok()) {
      result.action = entry.served ? ReloadAction::kReloaded : ReloadAction::kLoaded;
      result.version = (*built)->version;
      entry.message.clear();
      old = std::exchange(entry.served, std::move(built).value());  // the swap
    } else {
      result.action = ReloadAction::kFailed;
      result.message = built.status().ToString();
      result.version = entry.served ? entry.served->version : 0;
      entry.message = entry.served ? "reload failed, version " + std::to_string(result.version) +
                                         " still served: " + result.message
                                   : result.message;
    }
  }
  const std::string where = directory.empty() ? "" : " (" + directory + ")";
  if (result.action == ReloadAction::kFailed) {
    metrics_.RecordModelLoad(name, false);
    if (result.version > 0) {
      spdlog::error("model {}{} failed to reload, version {} stays served: {}", name, where,
                    result.version, result.message);
    } else {
      spdlog::error("model {}{} failed to load: {}", name, where, result.message);
      metrics_.SetModelReady(name, false);
    }
  } else {
    metrics_.RecordModelLoad(name, true);
    metrics_.SetModelReady(name, true);
    if (old) Retire(std::move(old));
  }
  return result;
}

void ModelRegistry::Unload(const std::string& name) {
  std::shared_ptr<ServedModel> old;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = entries_.find(name);
    if (it == entries_.end()) return;
    old = std::move(it->second.served);
    entries_.erase(it);
  }
  metrics_.SetModelReady(name, false);
  if (old) Retire(std::move(old));
}

void ModelRegistry::Retire(std::shared_ptr<ServedModel> old) {
  // Before its scheduler refuses anything: a front end refused with
  // UNAVAILABLE by a retired version looks the model up again.
  old->retired.store(true);
  retirements_.Start([old = std::move(old)]() mutable {
    old->scheduler->Shutdown();  // runs every frame it still holds
    old.reset();                 // possibly the last reference: off its workers
  });
}

std::vector<ReloadResult> ModelRegistry::Reload(const std::string& model, bool force) {
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  if (shut_down_ || options_.repository.empty()) return {};
  const auto start = std::chrono::steady_clock::now();

  StatusOr<std::vector<std::string>> directories = ListModelDirectories(options_.repository);
  if (!directories.ok()) {
    // A repository that cannot be read unloads nothing: it may be back soon.
    spdlog::error("reload: {}", directories.status().ToString());
    ReloadResult failed;
    failed.model = model;
    failed.action = ReloadAction::kFailed;
    failed.message = directories.status().ToString();
    return {failed};
  }
  std::map<std::string, std::string> on_disk;  // name -> directory
  for (const std::string& directory : *directories) {
    on_disk[std::filesystem::path(directory).filename().string()] = directory;
  }
  std::map<std::string, Entry> known;  // copies; only this thread changes entries_
  {
    std::lock_guard<std::mutex> lock(mu_);
    known = entries_;
  }
  std::vector<std::string> names;
  if (!model.empty()) {
    names.push_back(model);
  } else {
    for (const auto& [name, directory] : on_disk) names.push_back(name);
    for (const auto& [name, entry] : known) {
      if (!entry.directory.empty() && !on_disk.count(name)) names.push_back(name);
    }
  }

  std::vector<ReloadResult> results;
  for (const std::string& name : names) {
    auto disk = on_disk.find(name);
    auto entry = known.find(name);
    ReloadResult result;
    result.model = name;
    if (disk != on_disk.end()) {
      const std::string fingerprint = ModelDirectoryFingerprint(disk->second);
      if (!force && entry != known.end() && entry->second.directory == disk->second &&
          entry->second.fingerprint == fingerprint) {
        result.action = ReloadAction::kUnchanged;
        result.version = entry->second.served ? entry->second.served->version : 0;
        result.message = entry->second.message;
      } else {
        result = LoadAndSwap(name, disk->second, fingerprint);
      }
    } else if (entry != known.end() && !entry->second.directory.empty()) {
      Unload(name);
      result.action = ReloadAction::kUnloaded;
    } else {
      result.action = ReloadAction::kFailed;
      result.message = entry != known.end()
                           ? "model " + name + " is not from the repository; nothing to reload"
                           : "no model directory " + name + " with a config.pbtxt in '" +
                                 options_.repository + "'";
      if (entry != known.end() && entry->second.served) {
        result.version = entry->second.served->version;
      }
    }
    if (result.action != ReloadAction::kUnchanged) {
      spdlog::info("reload: model {} {} (version {} served, {} ms){}{}", name,
                   ReloadActionName(result.action), result.version, result.load_ms,
                   result.message.empty() ? "" : ": ", result.message);
    }
    results.push_back(std::move(result));
  }
  std::sort(results.begin(), results.end(),
            [](const ReloadResult& a, const ReloadResult& b) { return a.model < b.model; });
  spdlog::debug("reload of '{}' done in {} ms", options_.repository, MillisecondsSince(start));
  return results;
}

std::string ModelRegistry::DefaultNameLocked() const {
  if (!options_.default_model.empty()) return options_.default_model;
  auto preferred = entries_.find("nanodet-g");
  if (preferred != entries_.end() && preferred->second.served) return preferred->first;
  for (const auto& [name, entry] : entries_) {
    if (entry.served) return name;
  }
  return "";
}

std::shared_ptr<ServedModel> ModelRegistry::Find(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(name.empty() ? DefaultNameLocked() : name);
  return it == entries_.end() ? nullptr : it->second.served;
}

std::vector<ModelStatus> ModelRegistry::List() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ModelStatus> models;
  models.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) {
    ModelStatus status;
    status.name = name;
    status.state = entry.served ? ModelState::kReady : ModelState::kFailed;
    status.message = entry.message;
    status.served = entry.served;
    models.push_back(std::move(status));
  }
  return models;
}

std::string ModelRegistry::Names() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string names;
  for (const auto& [name, entry] : entries_) {
    if (!entry.served) continue;
    if (!names.empty()) names += ", ";
    names += name;
  }
  return names;
}

std::string ModelRegistry::default_model() const {
  std::lock_guard<std::mutex> lock(mu_);
  return DefaultNameLocked();
}

void ModelRegistry::StartPolling(std::chrono::milliseconds interval) {
  StopPolling();
  {
    std::lock_guard<std::mutex> reload_lock(reload_mu_);
    if (shut_down_ || interval.count() <= 0 || options_.repository.empty()) return;
  }
  {
    std::lock_guard<std::mutex> lock(poll_mu_);
    stop_polling_ = false;
  }
  spdlog::info("polling model repository '{}' every {} ms", options_.repository, interval.count());
  poller_ = std::thread([this, interval] { PollLoop(interval); });
}

void ModelRegistry::PollLoop(std::chrono::milliseconds interval) {
  std::unique_lock<std::mutex> lock(poll_mu_);
  while (!poll_cv_.wait_for(lock, interval, [this] { return stop_polling_; })) {
    lock.unlock();
    Reload();
    lock.lock();
  }
}

void ModelRegistry::StopPolling() {
  {
    std::lock_guard<std::mutex> lock(poll_mu_);
    stop_polling_ = true;
  }
  poll_cv_.notify_all();
  if (poller_.joinable()) poller_.join();
}

void ModelRegistry::Shutdown() {
  StopPolling();
  std::vector<std::shared_ptr<ServedModel>> serving;
  {
    std::lock_guard<std::mutex> reload_lock(reload_mu_);
    if (shut_down_) return;
    shut_down_ = true;
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, entry] : entries_) {
      if (entry.served) serving.push_back(entry.served);
    }
  }
  // Every model drains at once; the versions stay findable, and refuse
  // frames with UNAVAILABLE (not retired: there is nothing newer to find).
  std::vector<std::thread> drains;
  for (const std::shared_ptr<ServedModel>& served : serving) {
    drains.emplace_back([&served] { served->scheduler->Shutdown(); });
  }
  for (std::thread& drain : drains) drain.join();
  retirements_.JoinAll();
}

}  // namespace lowbit::server
