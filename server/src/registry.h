// The models being served, shared by every front end (lowbit.v1.Detector,
// lowbit.v1.Admin, KServe v2). Each model name maps to at most one served
// version; a reload builds the new version beside the old one and swaps it
// in atomically. A frame holds the ServedModel it was submitted to until it
// is answered, so frames already queued finish on the old version, whose
// scheduler is then drained and stopped off the request path.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "background_threads.h"
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
  // kFailed: why it failed. kReady: empty, or why the last reload failed
  // (the earlier version is still served).
  std::string message;
  std::shared_ptr<const ServedModel> served;  // null unless ready
};

enum class ReloadAction { kUnchanged, kLoaded, kReloaded, kUnloaded, kFailed };

// "unchanged", "loaded", "reloaded", "unloaded", "failed".
const char* ReloadActionName(ReloadAction action);

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

// Versions and swaps. Each name's current version is one shared_ptr in
// `entries_`, replaced under `mu_` (Find copies it under the same lock), so a
// frame runs on whichever version it found and keeps it alive until
// answered. A reload builds the new version completely (model loaded,
// scheduler created and warmed up at every batch size) before the swap. The
// replaced version is then retired: `retired` is set, and a background
// thread runs its scheduler's Shutdown (it still runs every frame it holds)
// and only then drops its reference, so the last reference to a scheduler is
// never dropped on one of its own workers. A reload that fails keeps the
// version being served, if any.
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
  // reload at a time (Shutdown waits for the one in progress). A directory
  // is loaded again only if its fingerprint (ModelDirectoryFingerprint)
  // changed since its last attempt, or `force`: a broken model is not
  // retried, nor logged again, until its files change. A repository that
  // cannot be listed unloads nothing. Results sorted by name; empty without
  // a repository (FromSpecs) or after Shutdown.
  std::vector<ReloadResult> Reload(const std::string& model = "", bool force = false);

  // Serves `spec` (already loaded) as a new version of spec.name, built and
  // swapped in as Reload does (a new name is added, kLoaded; otherwise
  // kReloaded). For tests and programs that load models themselves; a
  // version installed so is never reloaded or unloaded by Reload unless its
  // name is a repository directory.
  ReloadResult Install(ModelSpec spec);

  // Polls the repository every `interval` (0: stop polling) and reloads what changed.
  void StartPolling(std::chrono::milliseconds interval);

  // Stops polling, then drains and stops every version's scheduler. Idempotent.
  void Shutdown();

 private:
  // One name: a repository directory, or a spec given to FromSpecs/Install.
  struct Entry {
    std::shared_ptr<ServedModel> served;  // null: nothing served (FAILED)
    std::string message;                  // the last load's error; empty if it loaded
    std::string directory;                // empty: not from the repository
    std::string fingerprint;              // of the files the last load attempt read
  };
  ModelRegistry(const RegistryOptions& options, ServerMetrics& metrics, Clock& clock,
                DecodeBudget* budget);

  // A new version of spec.name (the next of its load counter), its scheduler
  // created and warmed up. Called with reload_mu_ held.
  StatusOr<std::shared_ptr<ServedModel>> Build(ModelSpec spec);
  // Loads `directory` as the name's next version and publishes the outcome.
  // reload_mu_ held.
  ReloadResult LoadAndSwap(const std::string& name, const std::string& directory,
                           const std::string& fingerprint);
  // The outcome of one load of `name`: `built` swapped in (one pointer
  // exchange under mu_) and the version it replaces retired, or the failure
  // recorded while the version being served, if any, stays. `directory`
  // empty: not a repository load. reload_mu_ held.
  ReloadResult Publish(const std::string& name, StatusOr<std::shared_ptr<ServedModel>> built,
                       const std::string& directory, const std::string& fingerprint,
                       int64_t load_ms);
  // Removes `name` and retires its version. reload_mu_ held.
  void Unload(const std::string& name);
  // Sets `retired`, then drains and releases `old` on a background thread.
  void Retire(std::shared_ptr<ServedModel> old);
  std::string DefaultNameLocked() const;  // mu_ held
  void PollLoop(std::chrono::milliseconds interval);
  void StopPolling();

  const RegistryOptions options_;
  ServerMetrics& metrics_;
  Clock& clock_;
  DecodeBudget* const budget_;

  // Held by Reload, Install and Shutdown: one change at a time. Taken before mu_.
  std::mutex reload_mu_;
  bool shut_down_ = false;                // reload_mu_
  std::map<std::string, int64_t> loads_;  // successful loads per name; reload_mu_

  mutable std::mutex mu_;  // Find's lock: held only for map look-ups and pointer swaps
  std::map<std::string, Entry> entries_;  // by name

  BackgroundThreads retirements_;  // one per retired version: its drain

  std::mutex poll_mu_;
  std::condition_variable poll_cv_;
  bool stop_polling_ = false;  // poll_mu_
  std::thread poller_;         // touched by StartPolling and Shutdown only
};

}  // namespace lowbit::server
