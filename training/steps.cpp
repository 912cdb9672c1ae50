// Model::compile and the steps of the training loop (Keras's Trainer): train_step, test_step,
// predict_step, compute_loss, apply_gradients, the running metrics, and the *_on_batch calls.
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "autodiff/ops.hpp"
#include "distributed/data_parallel.hpp"
#include "training/compiled.hpp"

namespace xtape::layers {

namespace {

std::string output_prefix(const std::string& name, std::size_t outputs) {
  return outputs > 1 ? name + "_" : "";
}

}  // namespace

// ---- compile ----

void Model::compile(const std::string& loss, const std::string& optimizer,
                    const std::vector<std::string>& metrics) {
  compile(loss, std::shared_ptr<optim::Optimizer>(optim::make_optimizer(optimizer)), metrics);
}

void Model::compile(const std::string& loss, std::shared_ptr<optim::Optimizer> optimizer,
                    const std::vector<std::string>& metrics) {
  if (!optimizer) throw std::invalid_argument(class_name() + "::compile: null optimizer");
  compile(CompileOptions{.loss = {loss}, .optimizer = std::move(optimizer), .metrics = metrics});
}

void Model::compile(CompileOptions o) {
  const std::string who = class_name() + "::compile";
  if (!o.optimizer)
    o.optimizer = std::shared_ptr<optim::Optimizer>(optim::make_optimizer("rmsprop"));
  if (o.loss.empty() && o.loss_fns.empty() && o.loss_objects.empty())
    throw std::invalid_argument(who + ": no loss given");
  // Names are checked now, the match with the outputs at the first step.
  for (const std::string& l : o.loss) (void)losses::get(l);
  for (const std::string& m : o.metrics) (void)metrics::get(m);
  for (const auto& [out, ms] : o.output_metrics)
    for (const std::string& m : ms) (void)metrics::get(m);
  for (const auto& l : o.loss_objects)
    if (!l) throw std::invalid_argument(who + ": null loss object");
  for (const auto& m : o.metric_objects)
    if (!m) throw std::invalid_argument(who + ": null metric object");
  for (const auto& t : o.gradient_transforms)
    if (!t) throw std::invalid_argument(who + ": empty gradient transform");
  auto c = std::make_shared<Compiled>();
  c->options = std::move(o);
  optimizer_ = c->options.optimizer;
  compiled_ = std::move(c);
  train_vars_.clear();
}

void Model::add_gradient_transform(GradientTransform transform) {
  if (!transform) throw std::invalid_argument(class_name() + "::add_gradient_transform: empty");
  compiled_state("add_gradient_transform")
      .options.gradient_transforms.push_back(std::move(transform));
}

Model::Compiled& Model::compiled_state(const char* who) {
  if (!compiled_)
    throw std::invalid_argument(class_name() + "::" + who + ": call compile() before " + who +
                                "()");
  return *compiled_;
}

void Model::resolve_outputs(std::size_t n) {
  Compiled& c = *compiled_;
  if (!c.outputs.empty()) {
    if (c.outputs.size() != n)
      throw std::invalid_argument(class_name() + " '" + name() + "': compiled for " +
                                  std::to_string(c.outputs.size()) + " outputs, got " +
                                  std::to_string(n));
    return;
  }
  const CompileOptions& o = c.options;
  const std::size_t losses = std::max({o.loss.size(), o.loss_fns.size(), o.loss_objects.size()});
  if (losses != 1 && losses != n)
    throw std::invalid_argument(class_name() + " '" + name() + "': " + std::to_string(losses) +
                                " losses for " + std::to_string(n) +
                                " outputs (give one for all, or one per output)");
  if (!o.loss_weights.empty() && o.loss_weights.size() != n)
    throw std::invalid_argument(class_name() + " '" + name() +
                                "': " + std::to_string(o.loss_weights.size()) +
                                " loss_weights for " + std::to_string(n) + " outputs");
  for (std::size_t i = 0; i < n; ++i) {
    Compiled::Output out;
    out.name = is_functional() ? outputs()[i].layer()->name() : "output_" + std::to_string(i);
    const std::size_t li = losses == 1 ? 0 : i;
    if (li < o.loss_objects.size() && o.loss_objects[li]) {
      out.loss = o.loss_objects[li];
    } else if (li < o.loss_fns.size() && o.loss_fns[li]) {
      out.loss = losses::make_loss("custom_loss", o.loss_fns[li]);
    } else {
      out.loss = losses::get(o.loss.at(li));
    }
    out.weight = o.loss_weights.empty() ? 1.f : o.loss_weights[i];
    const std::string prefix = output_prefix(out.name, n);
    const std::string loss_name = li < o.loss.size() ? o.loss[li] : out.loss->name();
    // A fresh metric per output (metrics hold state); "accuracy" resolved from the loss.
    for (const std::string& m : o.metrics)
      out.metrics.push_back({prefix + m, metrics::get(m, loss_name)});
    if (const auto it = o.output_metrics.find(out.name); it != o.output_metrics.end())
      for (const std::string& m : it->second)
        out.metrics.push_back({prefix + m, metrics::get(m, loss_name)});
    if (!o.metric_objects.empty()) {
      if (n != 1)
        throw std::invalid_argument(class_name() + " '" + name() +
                                    "': metric_objects are for a model of one output; give "
                                    "metric names per output in output_metrics");
      for (const auto& m : o.metric_objects) out.metrics.push_back({m->name(), m});
    }
    c.outputs.push_back(std::move(out));
  }
  for (const auto& [oname, _] : o.output_metrics) {
    bool known = false;
    for (const auto& out : c.outputs) known = known || out.name == oname;
    if (!known)
      throw std::invalid_argument(class_name() + " '" + name() + "': output_metrics names '" +
                                  oname + "', which is not an output");
  }
}

nlohmann::json Model::compile_config() const {
  if (!compiled_) return nullptr;
  nlohmann::json m = nlohmann::json::array();
  for (const std::string& name : compiled_->options.metrics) m.push_back(name);
  return {
      {"loss", compiled_->options.loss},
      {"optimizer", {{"name", optimizer_->name()}, {"learning_rate", optimizer_->learning_rate()}}},
      {"metrics", m},
      {"loss_weights", compiled_->options.loss_weights}};
}

std::vector<std::string> Model::metrics_names() const {
  std::vector<std::string> out = {"loss"};
  if (!compiled_) return out;
  if (compiled_->outputs.size() > 1)
    for (const auto& o : compiled_->outputs) out.push_back(o.name + "_loss");
  for (const auto& o : compiled_->outputs)
    for (const auto& m : o.metrics) out.push_back(m.name);
  return out;
}

// ---- the pieces of a step ----

std::vector<optim::Variable>& Model::training_variables() {
  if (train_vars_.empty()) train_vars_ = trainable_variables();
  return train_vars_;
}

Tensor Model::compute_loss(const Batch& b, const std::vector<Tensor>& outputs) {
  Compiled& c = compiled_state("fit");
  resolve_outputs(outputs.size());
  if (b.y.size() != outputs.size())
    throw std::invalid_argument(class_name() + " '" + name() + "': " + std::to_string(b.y.size()) +
                                " targets for " + std::to_string(outputs.size()) + " outputs");
  Tensor total;
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    Compiled::Output& out = c.outputs[i];
    // Keras's Loss.__call__: squeezes (n,) against (n, 1), weighs, reduces.
    Tensor li = (*out.loss)(b.y[i], outputs[i], b.sample_weight);
    out.last_loss = li;  // read after backward, in update_metrics
    if (outputs.size() > 1 || out.weight != 1.f) li = li * out.weight;
    total = total.defined() ? total + li : li;
  }
  // Keras: the losses layers added in this forward pass and the weights' regularization
  // penalties join the loss (for the founding model there are none: the same bits).
  for (const Tensor& extra : losses()) total = total + extra;
  return total;
}

void Model::apply_gradients(std::vector<optim::Variable>& vars) {
  // Data-parallel: the global mean gradient first, so that clipping sees the same on every rank.
  if (data_parallel_) data_parallel_->reduce_gradients(vars);
  for (const auto& t : compiled_state("fit").options.gradient_transforms) t(vars);
  optimizer_->apply(vars);
  apply_constraints();  // Keras's optimizer projects constrained weights after the update
}

void Model::update_metrics(const Batch& b, const std::vector<Tensor>& outputs, double loss_value) {
  Compiled& c = compiled_state("fit");
  NoGrad no_grad;
  const double n = outputs.empty() || outputs[0].ndim() == 0 ? 1.0 : double(outputs[0].shape()[0]);
  c.loss_total += loss_value * n;
  c.loss_count += n;
  for (std::size_t i = 0; i < c.outputs.size() && i < outputs.size(); ++i) {
    Compiled::Output& out = c.outputs[i];
    out.loss_total += double(out.last_loss.item()) * n;
    out.loss_count += n;
    for (auto& m : out.metrics) m.metric->update_state(b.y[i], outputs[i], b.sample_weight);
  }
}

Logs Model::metrics_result() const {
  Logs logs;
  if (!compiled_) return logs;
  const Compiled& c = *compiled_;
  logs["loss"] = c.loss_count ? c.loss_total / c.loss_count : 0.0;
  for (const auto& out : c.outputs) {
    if (c.outputs.size() > 1)
      logs[out.name + "_loss"] = out.loss_count ? out.loss_total / out.loss_count : 0.0;
    for (const auto& m : out.metrics) logs[m.name] = m.metric->result();
  }
  return logs;
}

void Model::reset_metrics() {
  if (!compiled_) return;
  compiled_->loss_total = compiled_->loss_count = 0;
  for (auto& out : compiled_->outputs) {
    out.loss_total = out.loss_count = 0;
    for (auto& m : out.metrics) m.metric->reset_state();
  }
}

// ---- the steps ----

Logs Model::train_step(const Batch& b) {
  const std::vector<Tensor> outputs = call_all(b.x, true);
  Tensor loss = compute_loss(b, outputs);
  auto& vars = training_variables();
  for (auto& v : vars) v.value.zero_grad();
  loss.backward();
  last_loss_ = loss.item();
  // A non-finite loss means non-finite gradients: that update is never applied (data-parallel:
  // on any rank, then on none).
  const bool finite = std::isfinite(last_loss_);
  if (data_parallel_ ? agree_step(b, finite) : finite) apply_gradients(vars);
  update_metrics(b, outputs, last_loss_);
  return metrics_result();
}

Logs Model::test_step(const Batch& b) {
  NoGrad no_grad;
  const std::vector<Tensor> outputs = call_all(b.x, false);
  const Tensor loss = compute_loss(b, outputs);
  update_metrics(b, outputs, loss.item());
  return metrics_result();
}

std::vector<Tensor> Model::predict_step(const Batch& b) {
  NoGrad no_grad;
  return call_all(b.x, false);
}

Logs Model::train_on_batch(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                           const Tensor& sample_weight) {
  compiled_state("train_on_batch");
  const FlushDenormal flush;
  build_for(x);
  train_vars_.clear();
  reset_metrics();
  return train_step(Batch{x, y, sample_weight, {}});
}

Logs Model::test_on_batch(const std::vector<Tensor>& x, const std::vector<Tensor>& y,
                          const Tensor& sample_weight) {
  compiled_state("test_on_batch");
  const FlushDenormal flush;
  reset_metrics();
  return test_step(Batch{x, y, sample_weight, {}});
}

std::vector<Tensor> Model::predict_on_batch(const std::vector<Tensor>& x) {
  const FlushDenormal flush;
  return predict_step(Batch{x, {}, {}, {}});
}

}  // namespace xtape::layers
