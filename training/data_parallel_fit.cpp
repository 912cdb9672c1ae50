// The Model side of a data-parallel fit (distributed/data_parallel.hpp): the broadcast of the
// training state from rank 0, the per-rank random streams, the step agreement and the global
// metrics.
#include <cstring>
#include <stdexcept>

#include "autodiff/detail.hpp"
#include "distributed/data_parallel.hpp"
#include "layers/state_text.hpp"
#include "models/model.hpp"
#include "saving/structure.hpp"
#include "training/compiled.hpp"

namespace xtape::layers {

namespace {

// FNV-1a over the names and shapes: ranks whose models differ stop before any other collective.
std::uint64_t fingerprint(const std::vector<std::pair<std::string, Tensor>>& ws) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* p, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i)
      h = (h ^ static_cast<const unsigned char*>(p)[i]) * 1099511628211ull;
  };
  for (const auto& [name, t] : ws) {
    mix(name.data(), name.size());
    for (std::size_t d : t.shape()) mix(&d, sizeof d);
  }
  return h;
}

// A stream of its own for rank r > 0, derived from rank 0's state (the same on every run).
Rng::State rank_stream(const Rng::State& s, int rank) {
  Rng r(s[0] ^ (s[1] << 1) ^ (s[2] << 2) ^ (s[3] << 3) ^
        (0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(rank)));
  return {r.next_u64(), r.next_u64(), r.next_u64(), r.next_u64() | 1};
}

void put(std::string& out, const std::string& s) {
  const std::uint64_t n = s.size();
  out.append(reinterpret_cast<const char*>(&n), sizeof n);
  out += s;
}

std::string take(const std::string& in, std::size_t& pos) {
  std::uint64_t n = 0;
  if (pos + sizeof n > in.size()) throw std::runtime_error("DataParallel: truncated layer states");
  std::memcpy(&n, in.data() + pos, sizeof n);
  pos += sizeof n;
  if (n > in.size() - pos) throw std::runtime_error("DataParallel: truncated layer states");
  std::string s = in.substr(pos, n);
  pos += n;
  return s;
}

}  // namespace

bool Model::is_chief() const {
  return !data_parallel_ || data_parallel_->communicator().is_chief();
}

bool Model::agree_step(const Batch& b, bool loss_finite) {
  const std::size_t rows =
      b.x.empty() || !b.x[0].defined() || b.x[0].ndim() == 0 ? 0 : b.x[0].dim(0);
  return data_parallel_->begin_step(rows, loss_finite);
}

void Model::broadcast_training_state() {
  distributed::Communicator& comm = data_parallel_->communicator();
  const int p = comm.size(), r = comm.rank();
  const std::string who = class_name() + "::fit (data-parallel)";
  if (p == 1) return;

  // Weights, trainable or not, in named_weights() order.
  const auto ws = named_weights();
  std::vector<std::uint64_t> prints(static_cast<std::size_t>(p));
  const std::uint64_t mine = fingerprint(ws);
  comm.allgather(&mine, sizeof mine, prints.data());
  for (int k = 0; k < p; ++k)
    if (prints[static_cast<std::size_t>(k)] != prints[0])
      throw std::invalid_argument(who + ": the model of rank " + std::to_string(k) +
                                  " has other weights (names or shapes) than rank 0's");
  {
    std::size_t total = 0;
    for (const auto& w : ws) total += w.second.size();
    std::vector<float> buf(total);
    std::size_t at = 0;
    if (r == 0)
      for (const auto& w : ws) {
        std::memcpy(buf.data() + at, w.second.data(), w.second.size() * sizeof(float));
        at += w.second.size();
      }
    comm.broadcast(buf.data(), buf.size() * sizeof(float), 0);
    if (r != 0) {
      NoGrad no_grad;
      at = 0;
      for (const auto& w : ws) {
        Tensor v = Tensor::empty(w.second.shape());
        std::memcpy(detail::mutable_data(v), buf.data() + at, v.size() * sizeof(float));
        at += v.size();
        Tensor dst = w.second;
        dst.assign(v);
      }
    }
  }

  // The optimizer: slots of the trainable variables, iterations, learning rate.
  const auto& vars = training_variables();
  auto& slots = optimizer_->slots();
  std::vector<std::uint64_t> counts(vars.size(), 0);
  if (r == 0)
    for (std::size_t i = 0; i < vars.size(); ++i)
      if (const auto it = slots.find(vars[i].name); it != slots.end())
        counts[i] = it->second.size();
  comm.broadcast(counts.data(), counts.size() * sizeof(std::uint64_t), 0);
  std::map<std::string, std::vector<Tensor>> received;
  for (std::size_t i = 0; i < vars.size(); ++i) {
    for (std::uint64_t k = 0; k < counts[i]; ++k) {
      Tensor t = r == 0 ? slots.at(vars[i].name)[k] : Tensor::zeros(vars[i].value.shape());
      if (t.shape() != vars[i].value.shape())
        throw std::invalid_argument(who + ": optimizer slot " + std::to_string(k) + " of '" +
                                    vars[i].name + "' has shape " + shape_str(t.shape()) +
                                    ", the variable " + shape_str(vars[i].value.shape()));
      comm.broadcast(detail::mutable_data(t), t.size() * sizeof(float), 0);
      received[vars[i].name].push_back(t);
    }
  }
  if (r != 0) slots = std::move(received);
  std::int64_t iterations = optimizer_->iterations();
  comm.broadcast(&iterations, sizeof iterations, 0);
  if (r != 0) optimizer_->set_iterations(iterations);
  if (!optimizer_->learning_rate_schedule()) {
    float lr = optimizer_->learning_rate();
    comm.broadcast(&lr, sizeof lr, 0);
    if (r != 0) optimizer_->set_learning_rate(lr);
  }

  // The random streams and every layer's own state.
  Rng::State rngs[2] = {shuffle_rng_.state(), global_rng().state()};
  comm.broadcast(rngs, sizeof rngs, 0);
  shuffle_rng_.set_state(rngs[0]);
  global_rng().set_state(rngs[1]);
  const auto layers = structured_layers(*this);
  std::string text;
  if (r == 0)
    for (const auto& l : layers) {
      const LayerState st = l.layer->save_own_state();
      put(text, std::to_string(st.size()));
      for (const auto& [k, v] : st) {
        put(text, k);
        put(text, v);
      }
    }
  comm.broadcast(text, 0);
  if (r != 0) {
    std::size_t pos = 0;
    for (const auto& l : layers) {
      LayerState st;
      const std::size_t n = std::stoul(take(text, pos));
      for (std::size_t i = 0; i < n; ++i) {
        std::string k = take(text, pos);
        st[k] = take(text, pos);
      }
      // Dropout masks (a layer's "rng") and global_rng() draws differ per rank.
      if (const auto it = st.find("rng"); it != st.end())
        if (const auto s = parse_rng_state(it->second))
          it->second = rng_state_text(rank_stream(*s, r));
      if (!st.empty()) l.layer->load_own_state(st);
    }
    global_rng().set_state(rank_stream(rngs[1], r));
  }
}

Logs Model::global_metrics_result() {
  Compiled& c = *compiled_;
  distributed::Communicator& comm = data_parallel_->communicator();
  if (comm.size() == 1) return metrics_result();
  // Sums and counts of every running mean, and every metric's state (they sum across ranks).
  std::vector<double> local = {c.loss_total, c.loss_count};
  std::vector<std::vector<double>> states;
  for (const auto& out : c.outputs) {
    local.push_back(out.loss_total);
    local.push_back(out.loss_count);
    for (const auto& m : out.metrics) {
      states.push_back(m.metric->state());
      local.insert(local.end(), states.back().begin(), states.back().end());
    }
  }
  std::vector<double> global = local;
  comm.allreduce_sum(global.data(), global.size());
  auto load = [&](const std::vector<double>& v) {
    std::size_t at = 0;
    c.loss_total = v[at++];
    c.loss_count = v[at++];
    std::size_t s = 0;
    for (auto& out : c.outputs) {
      out.loss_total = v[at++];
      out.loss_count = v[at++];
      for (auto& m : out.metrics) {
        const std::size_t n = states[s++].size();
        if (n)
          m.metric->set_state(std::vector<double>(v.begin() + long(at), v.begin() + long(at + n)));
        at += n;
      }
    }
  };
  load(global);
  Logs logs = metrics_result();
  load(local);
  // A metric without state() cannot be summed: rank 0's value is everyone's.
  std::vector<double> own;
  std::size_t s = 0;
  for (const auto& out : c.outputs)
    for (const auto& m : out.metrics)
      if (states[s++].empty()) own.push_back(logs[m.name]);
  if (!own.empty()) {
    comm.broadcast(own.data(), own.size() * sizeof(double), 0);
    std::size_t k = 0;
    s = 0;
    for (const auto& out : c.outputs)
      for (const auto& m : out.metrics)
        if (states[s++].empty()) logs[m.name] = own[k++];
  }
  return logs;
}

}  // namespace xtape::layers
