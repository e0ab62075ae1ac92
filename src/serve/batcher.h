// Request batching for `mixpeft serve`: HTTP threads submit items; one worker
// thread collects them for a short window and hands them to the model as one
// batch, so requests for different profiles share a forward pass. Torch-free.
//
//   Batcher<Item, Outcome> b({/*window_us=*/2000, /*max_rows=*/32},
//       [](std::vector<Item>& items) { return run_all(items); });   // one Outcome per item
//   Outcome o = b.submit(item, /*rows=*/3);   // blocks until its batch ran
//
// A batch starts when the first waiting item has waited window_us, or as soon
// as the waiting items reach max_rows; it takes items in arrival order while
// their rows fit in max_rows (always at least one). An exception thrown by
// run() is handed to every item of that batch. stop() runs what is waiting,
// then ends the worker; submit() after stop() throws kUnsupported.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "mixpeft/error.h"

namespace mixpeft::serve {

struct BatcherOptions {
  int64_t window_us = 2000;  // how long the first item of a batch waits for company; 0 = no waiting
  int64_t max_rows = 32;     // rows in one batch (one item may have several rows)
};

template <typename Item, typename Outcome>
class Batcher {
 public:
  using Run = std::function<std::vector<Outcome>(std::vector<Item>&)>;

  Batcher(const BatcherOptions& options, Run run) : options_(options), run_(std::move(run)) {
    MIXPEFT_CHECK(options_.window_us >= 0 && options_.max_rows > 0, ErrorKind::kInvalidArgument,
                  "batcher: window_us must be >= 0 and max_rows > 0");
    worker_ = std::thread([this] { loop(); });
  }
  ~Batcher() { stop(); }
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  Outcome submit(Item item, int64_t rows) {
    std::future<Outcome> done;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      MIXPEFT_CHECK(!stopping_, ErrorKind::kUnsupported, "the server is shutting down");
      waiting_.push_back(Waiting{std::move(item), rows, std::chrono::steady_clock::now(), {}});
      done = waiting_.back().promise.get_future();
      waiting_rows_ += rows;
    }
    cv_.notify_all();
    return done.get();
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_ && !worker_.joinable()) return;
      stopping_ = true;
    }
    cv_.notify_all();
    if (worker_.joinable()) worker_.join();
  }

 private:
  struct Waiting {
    Item item;
    int64_t rows;
    std::chrono::steady_clock::time_point arrived;
    std::promise<Outcome> promise;
  };

  void loop() {
    for (;;) {
      std::vector<Waiting> batch;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
        if (waiting_.empty()) return;  // stopping, nothing left
        const auto deadline = waiting_.front().arrived + std::chrono::microseconds(options_.window_us);
        cv_.wait_until(lock, deadline, [&] { return stopping_ || waiting_rows_ >= options_.max_rows; });
        int64_t rows = 0;
        while (!waiting_.empty() && (batch.empty() || rows + waiting_.front().rows <= options_.max_rows)) {
          rows += waiting_.front().rows;
          waiting_rows_ -= waiting_.front().rows;
          batch.push_back(std::move(waiting_.front()));
          waiting_.pop_front();
        }
      }
      std::vector<Item> items;
      items.reserve(batch.size());
      for (auto& w : batch) items.push_back(std::move(w.item));
      try {
        std::vector<Outcome> out = run_(items);
        MIXPEFT_CHECK(out.size() == batch.size(), ErrorKind::kInternal, "batcher: run returned ", out.size(),
                      " outcomes for ", batch.size(), " items");
        for (size_t i = 0; i < batch.size(); ++i) batch[i].promise.set_value(std::move(out[i]));
      } catch (...) {
        for (auto& w : batch) w.promise.set_exception(std::current_exception());
      }
    }
  }

  BatcherOptions options_;
  Run run_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Waiting> waiting_;
  int64_t waiting_rows_ = 0;
  bool stopping_ = false;
  std::thread worker_;
};

}  // namespace mixpeft::serve
