// Model::fit, evaluate and predict: Keras's training loop over arrays or a Dataset, around the
// overridable steps of training/steps.cpp.
#include <cmath>
#include <cstring>
#include <iostream>
#include <numeric>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "distributed/data_parallel.hpp"
#include "models/model.hpp"
#include "training/callbacks.hpp"
#include "training/compiled.hpp"
#include "training/progbar.hpp"

namespace xtape::layers {

namespace {

// ceil(n / batch) without overflow for any batch size.
std::size_t steps_for(std::size_t n, std::size_t batch) { return n / batch + (n % batch != 0); }

std::size_t rows_of(const char* who, const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                    const Tensor& sample_weight) {
  if (x.empty()) throw std::invalid_argument(std::string(who) + ": no inputs");
  const std::size_t n = x[0].defined() && x[0].ndim() ? x[0].shape()[0] : 0;
  auto check = [&](const Tensor& t, const std::string& what) {
    if (!t.defined() || t.ndim() == 0 || t.shape()[0] != n)
      throw std::invalid_argument(std::string(who) + ": x of shape " +
                                  (x[0].defined() ? shape_str(x[0].shape()) : "undefined") +
                                  " and " + what + " of shape " +
                                  (t.defined() ? shape_str(t.shape()) : "undefined") +
                                  " must have the same number of samples");
  };
  for (std::size_t i = 1; i < x.size(); ++i) check(x[i], "x[" + std::to_string(i) + "]");
  for (std::size_t i = 0; i < y.size(); ++i)
    check(y[i], y.size() == 1 ? "y" : "y[" + std::to_string(i) + "]");
  if (sample_weight.defined()) check(sample_weight, "sample_weight");
  if (n == 0) throw std::invalid_argument(std::string(who) + ": no samples");
  return n;
}

// Rows [begin, end) of arrays in batches, shuffled every epoch by `rng` (the model's shuffle
// RNG, which checkpoints save) exactly as the permutation has always been drawn. With `ranks`
// > 1 (data-parallel) every batch is split: rank r takes rows [r b / ranks, (r + 1) b / ranks)
// of a batch of b rows, and a last batch of fewer rows than ranks is dropped.
class ArraySlice : public Dataset {
 public:
  ArraySlice(const std::vector<Tensor>& x, const std::vector<Tensor>& y, Tensor sw,
             std::size_t begin, std::size_t end, std::size_t batch, bool shuffle, Rng* rng,
             int rank = 0, int ranks = 1)
      : rank_(static_cast<std::size_t>(rank)),
        ranks_(static_cast<std::size_t>(ranks)),
        x_(x),
        y_(y),
        sw_(std::move(sw)),
        begin_(begin),
        end_(end),
        batch_(batch),
        shuffle_(shuffle),
        rng_(rng) {
    order_.resize(end_ - begin_);
    std::iota(order_.begin(), order_.end(), begin_);
  }
  std::size_t batches() const override {
    const std::size_t n = end_ - begin_, rest = n % batch_;
    return steps_for(n, batch_) - (ranks_ > 1 && rest != 0 && rest < ranks_);
  }
  void begin_epoch(int) override {
    std::iota(order_.begin(), order_.end(), begin_);
    const std::size_t n = order_.size();
    if (shuffle_)
      for (std::size_t i = n; i-- > 1;) std::swap(order_[i], order_[rng_->below(i + 1)]);
    pos_ = 0;
  }
  std::optional<Batch> next() override {
    if (pos_ >= order_.size() || order_.size() - pos_ < ranks_) return std::nullopt;
    const std::size_t take = std::min(batch_, order_.size() - pos_);
    Batch b;
    const std::size_t lo = pos_ + take * rank_ / ranks_, hi = pos_ + take * (rank_ + 1) / ranks_;
    b.rows.assign(order_.begin() + static_cast<long>(lo), order_.begin() + static_cast<long>(hi));
    pos_ += take;
    b.x = gather_all(x_, b.rows);
    b.y = gather_all(y_, b.rows);
    if (sw_.defined()) b.sample_weight = gather_rows(sw_, b.rows);
    return b;
  }

 private:
  std::size_t rank_, ranks_;
  const std::vector<Tensor>& x_;
  const std::vector<Tensor>& y_;
  Tensor sw_;
  std::size_t begin_, end_, batch_, pos_ = 0;
  bool shuffle_;
  Rng* rng_;
  std::vector<std::size_t> order_;
};

// Per-sample weights times class weights (labels from the first target).
Tensor effective_weights(const char* who, const Tensor& sw, const std::map<int, float>& cw,
                         const Tensor& y0, std::size_t n) {
  if (cw.empty()) return sw;
  Tensor w(Shape{n}, 1.f);
  if (sw.defined()) {
    if (sw.size() != n)
      throw std::invalid_argument(std::string(who) + ": sample_weight of shape " +
                                  shape_str(sw.shape()) + " is not one weight per sample");
    std::memcpy(w.data(), sw.data(), n * sizeof(float));
  }
  const std::size_t k = y0.size() / n;
  for (std::size_t i = 0; i < n; ++i) {
    const float* row = y0.data() + i * k;
    const int label = k == 1 ? static_cast<int>(std::lround(row[0]))
                             : static_cast<int>(std::max_element(row, row + k) - row);
    if (const auto it = cw.find(label); it != cw.end()) w.data()[i] *= it->second;
  }
  return w;
}

std::string row_list(const std::vector<std::size_t>& rows) {
  std::string s;
  for (std::size_t i = 0; i < rows.size() && i < 3; ++i)
    s += (i ? ", " : "") + std::to_string(rows[i]);
  return rows.size() > 3 ? s + ", ..." : s;
}

}  // namespace

void Model::build_for(const std::vector<Tensor>& x) {
  if (built()) return;
  // One inference call on one sample builds every layer, lazily created ones included, as a
  // first call does in Keras.
  NoGrad no_grad;
  (void)call_all(gather_all(x, {0}), false);
}

Logs Model::run_eval(Dataset& data, std::size_t steps, int verbose) {
  NoGrad no_grad;
  const FlushDenormal flush;
  reset_metrics();
  data.begin_epoch(0);
  Progbar bar(steps, verbose);
  std::vector<std::pair<std::string, double>> shown;
  Logs logs;
  for (std::size_t s = 0; steps == 0 || s < steps; ++s) {
    auto b = data.next();
    if (!b) break;
    logs = test_step(*b);
    if (verbose) {
      shown.clear();
      const auto names = metrics_names();
      for (std::size_t i = 1; i < names.size(); ++i) shown.emplace_back(names[i], logs[names[i]]);
      shown.emplace_back("loss", logs["loss"]);
      bar.update(s + 1, shown, s + 1 == steps);
    }
  }
  return logs;
}

History Model::fit(const Tensor& x, const Tensor& y, const FitOptions& o) {
  return fit(std::vector<Tensor>{x}, std::vector<Tensor>{y}, o);
}

History Model::fit(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                   const FitOptions& o) {
  return run_fit(nullptr, &x, &y, o);
}

History Model::fit(Dataset& data, const FitOptions& o) {
  return run_fit(&data, nullptr, nullptr, o);
}

History Model::run_fit(Dataset* data, const std::vector<Tensor>* x, const std::vector<Tensor>* y,
                       const FitOptions& o) {
  const std::string who = class_name() + "::fit";
  compiled_state("fit");
  if (o.batch_size == 0) throw std::invalid_argument(who + ": batch_size must be positive");
  if (!(o.validation_split >= 0.f && o.validation_split < 1.f))
    throw std::invalid_argument(who + ": validation_split must be in [0, 1), got " +
                                std::to_string(o.validation_split));
  if (o.epochs < 0 || o.initial_epoch < 0)
    throw std::invalid_argument(who + ": epochs and initial_epoch must be >= 0, got epochs " +
                                std::to_string(o.epochs) + ", initial_epoch " +
                                std::to_string(o.initial_epoch));
  for (const auto& cb : o.callbacks)
    if (!cb) throw std::invalid_argument(who + ": null callback");
  distributed::DataParallel* const dp = o.distribute.get();
  const int rank = dp ? dp->rank() : 0, ranks = dp ? dp->size() : 1;
  if (dp && o.batch_size < static_cast<std::size_t>(ranks))
    throw std::invalid_argument(who + ": the global batch_size " + std::to_string(o.batch_size) +
                                " is smaller than the " + std::to_string(ranks) + " ranks");
  if (dp && data && !built())
    throw std::invalid_argument(who + ": build the model before a data-parallel fit on a Dataset");
  // Rank r's contiguous share of n rows (validation).
  auto share = [&](std::size_t n, int r) { return n * static_cast<std::size_t>(r) / ranks; };

  // The training and validation sources.
  std::unique_ptr<Dataset> own_train, own_val;
  std::vector<Tensor> val_x, val_y;
  Tensor val_sw;
  if (!data) {
    const std::size_t n = rows_of(who.c_str(), *x, *y, o.sample_weight);
    // Keras: the validation data is the last fraction of the samples, taken before shuffling.
    const double keep = 1.0 - std::round(double(o.validation_split) * 1e6) / 1e6;
    const std::size_t split =
        o.validation_split > 0.f ? static_cast<std::size_t>(std::floor(double(n) * keep)) : n;
    if (split == 0)
      throw std::invalid_argument(who + ": validation_split leaves no training samples");
    const Tensor sw = effective_weights(who.c_str(), o.sample_weight, o.class_weight, y->at(0), n);
    build_for(*x);
    own_train = std::make_unique<ArraySlice>(*x, *y, sw, 0, split, o.batch_size, o.shuffle,
                                             &shuffle_rng_, rank, ranks);
    if (dp && own_train->batches() == 0)
      throw std::invalid_argument(who + ": " + std::to_string(split) + " training samples for " +
                                  std::to_string(ranks) + " ranks");
    if (split < n && !o.validation_data)
      own_val = std::make_unique<ArraySlice>(*x, *y, sw, split + share(n - split, rank),
                                             split + share(n - split, rank + 1), o.batch_size,
                                             false, nullptr);
    data = own_train.get();
  } else if (o.validation_split > 0.f) {
    throw std::invalid_argument(who +
                                ": validation_split needs arrays; give a Dataset validation_data");
  } else if (!o.class_weight.empty() || o.sample_weight.defined()) {
    throw std::invalid_argument(who +
                                ": with a Dataset, weights come in its batches' sample_weight");
  }
  if (o.validation_data) {
    const ValidationData& v = *o.validation_data;
    const std::size_t vn = rows_of((who + " (validation_data)").c_str(), v.x, v.y, v.sample_weight);
    (void)vn;
    val_x = v.x;
    val_y = v.y;
    val_sw = v.sample_weight;
    own_val = std::make_unique<ArraySlice>(val_x, val_y, val_sw, share(vn, rank),
                                           share(vn, rank + 1), o.batch_size, false, nullptr);
  }
  std::size_t steps = data->batches();
  if (o.steps_per_epoch) {
    if (steps && o.steps_per_epoch > steps)
      throw std::invalid_argument(who + ": steps_per_epoch " + std::to_string(o.steps_per_epoch) +
                                  " is more than the " + std::to_string(steps) +
                                  " batches of the data");
    steps = o.steps_per_epoch;
  }
  if (steps == 0)
    throw std::invalid_argument(who + ": a Dataset of unknown length needs steps_per_epoch");
  if (dp && ranks > 1) {  // the same number of steps everywhere, or a collective would hang
    std::vector<std::uint64_t> all(static_cast<std::size_t>(ranks));
    const std::uint64_t mine = steps;
    dp->communicator().allgather(&mine, sizeof mine, all.data());
    for (int k = 0; k < ranks; ++k)
      if (all[static_cast<std::size_t>(k)] != all[0])
        throw std::invalid_argument(who + ": rank " + std::to_string(k) + " has " +
                                    std::to_string(all[static_cast<std::size_t>(k)]) +
                                    " steps per epoch, rank 0 " + std::to_string(all[0]));
  }

  // As TensorFlow does for its ops: denormals computed as zero (see set_flush_denormal).
  const FlushDenormal flush;
  train_vars_.clear();
  auto history = std::make_shared<HistoryLogger>();
  std::vector<std::shared_ptr<Callback>> cbs = o.callbacks;
  cbs.push_back(history);
  if (o.verbose && (!dp || dp->communicator().is_chief()))
    cbs.push_back(std::make_shared<ProgbarLogger>());
  stop_training_ = false;
  for (const auto& cb : cbs) {
    cb->set_model(this);
    cb->set_params({o.epochs, steps, o.verbose});
  }
  struct Active {  // the callbacks whose state checkpoints save, while this fit runs
    Model& m;
    ~Active() {
      m.active_callbacks_ = nullptr;
      m.data_parallel_ = nullptr;
    }
  } active{*this};
  active_callbacks_ = &cbs;
  data_parallel_ = dp;
  resume_epoch_ = -1;
  Logs logs;
  try {
    for (const auto& cb : cbs) cb->on_train_begin(logs);
    apply_callback_states(cbs, pending_callback_states_);
    pending_callback_states_.clear();
    const int first_epoch = resume_epoch_ >= 0 ? resume_epoch_ : o.initial_epoch;
    for (int epoch = first_epoch; epoch < o.epochs && !stop_training_; ++epoch) {
      for (const auto& cb : cbs) cb->on_epoch_begin(epoch, {});
      // Every epoch from rank 0's state, so that a resume at any epoch derives the same streams.
      if (dp) broadcast_training_state();
      reset_metrics();
      data->begin_epoch(epoch);
      Logs batch_logs;
      for (std::size_t s = 0; s < steps; ++s) {
        for (const auto& cb : cbs) cb->on_batch_begin(s, {});
        auto b = data->next();
        if (!b) break;  // the Dataset ran out early
        try {
          batch_logs = train_step(*b);
        } catch (const std::invalid_argument& e) {
          // Name the row of the data set, not the position in the shuffled batch.
          for (std::size_t r = 0; r < b->rows.size(); ++r) {
            Batch one{gather_all(b->x, {r}), gather_all(b->y, {r}), {}, {b->rows[r]}};
            if (b->sample_weight.defined()) one.sample_weight = gather_rows(b->sample_weight, {r});
            try {
              NoGrad no_grad;
              const auto outs = call_all(one.x, false);
              (void)compute_loss(one, outs);
            } catch (const std::exception& row_error) {
              throw std::invalid_argument(who + ": row " + std::to_string(b->rows[r]) +
                                          " of the training data: " + row_error.what());
            }
          }
          throw std::invalid_argument(who + ": epoch " + std::to_string(epoch + 1) + ", step " +
                                      std::to_string(s + 1) + " (rows " + row_list(b->rows) +
                                      "): " + e.what());
        }
        if (dp) batch_logs = global_metrics_result();
        for (const auto& cb : cbs) cb->on_batch_end(s, batch_logs);
        const auto loss = batch_logs.find("loss");
        if (loss != batch_logs.end() && !std::isfinite(loss->second)) {
          const double lv = std::isfinite(last_loss_) ? loss->second : last_loss_;
          const std::string what = "loss became " + std::to_string(lv) + " at epoch " +
                                   std::to_string(epoch + 1) + ", step " + std::to_string(s + 1);
          if (!stop_training_) throw std::runtime_error(who + ": " + what);
          if (is_chief())
            std::cout << who << ": " << what
                      << "; that update was not applied and training stops\n";
        }
        if (stop_training_) break;
      }
      Logs epoch_logs = dp ? global_metrics_result() : metrics_result();
      if (own_val) {
        Logs val = run_eval(*own_val, own_val->batches(), 0);
        if (dp) val = global_metrics_result();
        for (const auto& [k, v] : val) epoch_logs["val_" + k] = v;
      }
      logs = epoch_logs;
      for (const auto& cb : cbs) cb->on_epoch_end(epoch, logs);
      if (dp) dp->communicator().barrier();  // rank 0's files are written
    }
    for (const auto& cb : cbs) cb->on_train_end(logs);
    if (dp) dp->communicator().barrier();
  } catch (const std::exception& e) {
    // A rank that fails alone would leave the others waiting in a collective: end them all.
    if (dp && ranks > 1) {
      std::cerr << who << ": rank " << rank << " of " << ranks << " failed: " << e.what()
                << "\nstopping every rank (MPI_Abort)" << std::endl;
      dp->communicator().abort(1);
    }
    throw;
  }
  return history->history();
}

std::map<std::string, double> Model::evaluate(const Tensor& x, const Tensor& y,
                                              const EvaluateOptions& o) {
  return evaluate(std::vector<Tensor>{x}, std::vector<Tensor>{y}, o);
}

std::map<std::string, double> Model::evaluate(const std::vector<Tensor>& x,
                                              const std::vector<Tensor>& y,
                                              const EvaluateOptions& o, const Tensor& sw) {
  const std::string who = class_name() + "::evaluate";
  compiled_state("evaluate");
  if (o.batch_size == 0) throw std::invalid_argument(who + ": batch_size must be positive");
  const std::size_t n = rows_of(who.c_str(), x, y, sw);
  ArraySlice data(x, y, sw, 0, n, o.batch_size, false, nullptr);
  return run_eval(data, data.batches(), o.verbose);
}

std::map<std::string, double> Model::evaluate(Dataset& data, const EvaluateOptions& o) {
  compiled_state("evaluate");
  return run_eval(data, data.batches(), o.verbose);
}

Tensor Model::predict(const Tensor& x, const EvaluateOptions& o) {
  auto out = predict_all({x}, o);
  if (out.size() != 1)
    throw std::invalid_argument(class_name() + "::predict: the model has " +
                                std::to_string(out.size()) + " outputs: use predict_all()");
  return out[0];
}

std::vector<Tensor> Model::predict_all(const std::vector<Tensor>& x, const EvaluateOptions& o) {
  const std::string who = class_name() + "::predict";
  if (x.empty() || !x[0].defined() || x[0].ndim() == 0 || x[0].shape()[0] == 0)
    throw std::invalid_argument(
        who + ": x of shape " +
        (x.empty() || !x[0].defined() ? std::string("()") : shape_str(x[0].shape())) +
        " has no samples");
  if (o.batch_size == 0) throw std::invalid_argument(who + ": batch_size must be positive");
  const std::size_t n = rows_of(who.c_str(), x, {}, {});
  NoGrad no_grad;
  const FlushDenormal flush;
  std::vector<Tensor> out;
  std::vector<std::size_t> row;
  std::vector<std::size_t> idx;
  for (std::size_t b0 = 0; b0 < n; b0 = b0 + std::min(o.batch_size, n - b0)) {
    const std::size_t b1 = b0 + std::min(o.batch_size, n - b0);
    idx.resize(b1 - b0);
    std::iota(idx.begin(), idx.end(), b0);
    const std::vector<Tensor> yp = predict_step(Batch{gather_all(x, idx), {}, {}, idx});
    if (out.empty()) {
      for (const Tensor& t : yp) {
        Shape s = t.shape();
        s[0] = n;
        out.push_back(Tensor::empty(s));
        row.push_back(t.size() / (b1 - b0));
      }
    }
    for (std::size_t k = 0; k < yp.size(); ++k)
      std::memcpy(out[k].data() + b0 * row[k], yp[k].data(), yp[k].size() * sizeof(float));
  }
  return out;
}

}  // namespace xtape::layers
