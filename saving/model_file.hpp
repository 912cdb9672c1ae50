#pragma once
/// @file model_file.hpp
/// Whole-model files (Keras's model.save / keras.models.load_model): one safetensors file
/// holding the weights (named by structure, as save_weights names them) and, in its metadata,
/// the architecture as Keras-shaped config JSON ("model_config": {"class_name": ...,
/// "config": {...}}, with "inbound_nodes" for Functional models) and, for a compiled model, its
/// "compile_config" (loss, optimizer name and learning rate, metrics). The optimizer's state is
/// not saved here: checkpoints (Model::save_checkpoint) hold it.
#include <memory>
#include <string>

#include "models/model.hpp"

namespace xtape::layers {

/// Writes `model` (built) to `path` atomically. Throws std::logic_error when the model is not
/// built, std::runtime_error when a weight is not finite or the file cannot be written.
void save_model(const Model& model, const std::string& path);

/// Rebuilds the model saved at `path` from its config (built-in layers and the classes given
/// to register_layer) and loads its weights; predict then gives the bits of the saved model.
/// The global RNG is left as it was. Throws std::runtime_error "load_model: '<path>': ..."
/// naming what is wrong: not a model file, malformed config, an unregistered class (with how
/// to register it), weights that do not fit the structure. A model saved compiled comes back
/// compiled the same way, with a fresh optimizer.
std::shared_ptr<Model> load_model(const std::string& path);

}  // namespace xtape::layers
