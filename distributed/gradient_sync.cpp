#include "distributed/gradient_sync.h"

#include <glog/logging.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <stdexcept>

#include "core/error.h"

namespace r2rec {

namespace {
constexpr const char* kWho = "gradient sync";
}  // namespace

// Post-hook of one parameter's AccumulateGrad node: runs after the gradient was added to .grad().
struct GradientSynchronizer::Hook : torch::autograd::FunctionPostHook {
  Hook(GradientSynchronizer* owner, size_t slot) : owner(owner), slot(slot) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    owner->on_grad_ready(slot);
    return outputs;
  }
  GradientSynchronizer* owner;
  size_t slot;
};

GradientSynchronizer::GradientSynchronizer(std::vector<torch::Tensor> params, Communicator& comm,
                                           const GradSyncOptions& options)
    : params_(std::move(params)), comm_(comm), options_(options) {
  if (options_.op != ReduceOp::kAvg && options_.op != ReduceOp::kSum)
    throw std::invalid_argument(std::string(kWho) + ": op must be avg or sum, got " + reduce_op_name(options_.op));
  const size_t cap = bucket_cap_bytes(options_.bucket_mb);
  check_same_parameters(params_, comm_, kWho, /*check_requires_grad=*/true);
  broadcast_parameters(params_, comm_, /*root=*/0, cap, options_.timeout_s, kWho);

  std::vector<torch::Tensor> synced;
  for (size_t k = 0; k < params_.size(); ++k) {
    if (!params_[k].requires_grad()) continue;
    if (!params_[k].is_leaf())
      throw std::invalid_argument(std::string(kWho) + ": parameter " + std::to_string(k) + " is not a leaf tensor");
    synced_.push_back(k);
    synced.push_back(params_[k]);
  }
  buckets_ = assign_buckets(synced, cap, kWho);

  torch::NoGradGuard no_grad;
  views_.resize(synced_.size());
  bucket_of_.resize(synced_.size());
  for (size_t j = 0; j < buckets_.size(); ++j) {
    const Bucket& b = buckets_[j];
    const torch::Tensor& first = synced[b.params[0]];
    torch::Tensor flat = torch::zeros({static_cast<int64_t>(b.numel)}, first.options().requires_grad(false));
    for (size_t i = 0; i < b.params.size(); ++i) {
      const size_t slot = b.params[i];
      torch::Tensor& p = synced[slot];
      views_[slot] = flat.narrow(0, static_cast<int64_t>(b.offsets[i]), p.numel()).view(p.sizes());
      bucket_of_[slot] = j;
      if (p.grad().defined()) views_[slot].copy_(p.grad());
      p.mutable_grad() = views_[slot];  // gradient as bucket view: AccumulateGrad adds in place into the bucket
    }
    flats_.push_back(flat);
  }
  use_progress_thread_ = options_.overlap && options_.progress_thread && comm_.supports_progress_thread();
  if (options_.overlap) {
    for (size_t slot = 0; slot < synced_.size(); ++slot) {
      std::shared_ptr<torch::autograd::Node> acc = torch::autograd::impl::grad_accumulator(synced[slot]);
      CHECK(acc) << kWho << ": no grad accumulator for parameter " << synced_[slot];
      hook_keys_.push_back(acc->add_post_hook(std::make_unique<Hook>(this, slot)));
      accumulators_.push_back(std::move(acc));
    }
  }
}

GradientSynchronizer::~GradientSynchronizer() {
  stop_progress();
  for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

void GradientSynchronizer::reset_step() {
  ready_.assign(synced_.size(), false);
  pending_.resize(buckets_.size());
  for (size_t j = 0; j < buckets_.size(); ++j) pending_[j] = buckets_[j].params.size();
  works_.assign(buckets_.size(), nullptr);
  next_launch_ = 0;
  current_ = StepStats{};
  current_.launched_in_backward.assign(buckets_.size(), false);
  current_.hooks_before_launch.assign(buckets_.size(), -1);
  in_step_ = true;
}

void GradientSynchronizer::on_grad_ready(size_t slot) {
  if (!sync_) return;  // accumulation micro-step: the gradient stays local
  if (!in_step_) reset_step();
  if (ready_[slot])
    throw std::logic_error(std::string(kWho) + ": parameter " + std::to_string(synced_[slot]) +
                           " received a second gradient in one synchronised step (its bucket may be on the wire); "
                           "run the earlier backward passes under NoSyncScope");
  ++current_.hooks_fired;
  const torch::Tensor& p = params_[synced_[slot]];
  const torch::Tensor& g = p.grad();
  if (g.defined() && g.data_ptr() != views_[slot].data_ptr()) {  // .grad() was replaced (set_to_none, ...)
    torch::NoGradGuard no_grad;
    views_[slot].copy_(g);
  }
  ready_[slot] = true;
  const size_t b = bucket_of_[slot];
  if (--pending_[b] == 0) {
    in_backward_launch_ = true;
    launch_ready_buckets();
    in_backward_launch_ = false;
  }
  poll_in_flight();
}

void GradientSynchronizer::launch_ready_buckets() {
  // Fixed order: bucket j goes out only after 0..j-1, whatever order they filled in.
  while (next_launch_ < buckets_.size() && pending_[next_launch_] == 0) launch(next_launch_++);
}

void GradientSynchronizer::launch(size_t b) {
  current_.launch_order.push_back(b);
  current_.launched_in_backward[b] = true;  // finish() clears it for the buckets it launches
  current_.hooks_before_launch[b] = current_.hooks_fired;
  works_[b] = comm_.all_reduce(flats_[b], options_.op);
  if (!use_progress_thread_ || !in_backward_launch_) return;
  {
    std::lock_guard<std::mutex> lock(progress_mu_);
    progress_works_.push_back(works_[b]);
  }
  if (!progress_.joinable()) {
    progress_stop_ = false;
    progress_ = std::thread([this] {
      std::vector<WorkPtr> works;
      while (!progress_stop_.load(std::memory_order_acquire)) {
        {
          std::lock_guard<std::mutex> lock(progress_mu_);
          works = progress_works_;
        }
        for (auto& w : works) w->is_completed();
        std::this_thread::sleep_for(std::chrono::microseconds(options_.progress_poll_us));
      }
    });
  }
}

void GradientSynchronizer::stop_progress() {
  if (!progress_.joinable()) return;
  progress_stop_.store(true, std::memory_order_release);
  progress_.join();
  progress_works_.clear();
}

void GradientSynchronizer::poll_in_flight() {
  if (progress_.joinable()) return;  // the progress thread owns the Works in flight
  for (size_t b = 0; b < next_launch_; ++b)
    if (works_[b]) works_[b]->is_completed();  // drives MPI progress; finished Works stay completed
}

void GradientSynchronizer::finish() {
  if (!sync_) return;
  if (!in_step_) reset_step();
  torch::NoGradGuard no_grad;
  const size_t first_finish_launch = next_launch_;
  // Parameters whose hook did not fire: their current .grad() (earlier micro-steps) or zeros.
  for (size_t slot = 0; slot < synced_.size(); ++slot) {
    if (ready_[slot]) continue;
    if (options_.overlap) ++current_.unused_params;
    const torch::Tensor& g = params_[synced_[slot]].grad();
    if (!g.defined())
      views_[slot].zero_();
    else if (g.data_ptr() != views_[slot].data_ptr())
      views_[slot].copy_(g);
    ready_[slot] = true;
    --pending_[bucket_of_[slot]];
  }
  stop_progress();  // from here on only this thread touches the Works
  launch_ready_buckets();
  CHECK_EQ(next_launch_, buckets_.size()) << kWho << ": a bucket still has pending parameters";
  for (size_t b = first_finish_launch; b < buckets_.size(); ++b) current_.launched_in_backward[b] = false;
  for (auto& w : works_) w->wait(options_.timeout_s);
  for (size_t slot = 0; slot < synced_.size(); ++slot) {
    torch::Tensor& p = params_[synced_[slot]];
    if (!p.grad().defined() || p.grad().data_ptr() != views_[slot].data_ptr()) p.mutable_grad() = views_[slot];
  }
  works_.assign(buckets_.size(), nullptr);
  last_ = std::move(current_);
  in_step_ = false;
}

GradientSum::GradientSum(std::vector<torch::Tensor> params, const DataParallelGroup& group)
    : params_(std::move(params)), group_(group) {
  if (group_.size() <= 1 || group_.options().flat_gradients) return;
  GradSyncOptions o;
  o.op = ReduceOp::kSum;
  o.bucket_mb = group_.options().bucket_mb;
  o.timeout_s = group_.options().timeout_s;
  sync_ = std::make_unique<GradientSynchronizer>(params_, *group_.device(), o);
}

void GradientSum::micro_batch(bool last) {
  if (sync_) sync_->set_sync(last);
}

void GradientSum::finish() {
  if (sync_) {
    sync_->set_sync(true);
    sync_->finish();
  } else {
    sum_flat();
  }
}

void GradientSum::zero_grad() {
  torch::NoGradGuard no_grad;
  for (auto& p : params_)
    if (p.grad().defined()) p.mutable_grad().zero_();
}

// One flat float buffer over every parameter (zeros where a rank has no gradient), summed on the host.
void GradientSum::sum_flat() {
  if (group_.size() <= 1) return;
  int64_t total = 0;
  for (const auto& p : params_) total += p.numel();
  std::vector<float> flat(static_cast<size_t>(total), 0.0f);
  int64_t off = 0;
  for (const auto& p : params_) {
    if (p.grad().defined()) {
      auto g = p.grad().contiguous();
      std::copy(g.data_ptr<float>(), g.data_ptr<float>() + g.numel(), flat.begin() + off);
    }
    off += p.numel();
  }
  group_.sum(flat.data(), total);
  off = 0;
  for (const auto& p : params_) {
    torch::Tensor sum = torch::from_blob(flat.data() + off, p.sizes(), torch::kFloat32);
    if (p.grad().defined()) {
      p.mutable_grad().copy_(sum);
    } else {
      p.mutable_grad() = sum.clone();
    }
    off += p.numel();
  }
}

}  // namespace r2rec
