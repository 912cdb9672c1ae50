#pragma once
/// @file registry.hpp
/// Layers created back from their configs (Keras's deserialize / register_keras_serializable).
///
/// Every built-in layer and model is registered under its class name. A user class registers
/// itself once, before load_model:
///   register_layer<StandardizedConv2DWithCall>("StandardizedConv2DWithCall");
/// which builds it from its options struct (T::Options, read from the config with the
/// built-in layers' keys), or with a factory of its own:
///   register_layer("MyBlock", [](const nlohmann::json& config) { return make<MyBlock>(...); });
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "layers/conv.hpp"
#include "layers/core.hpp"
#include "layers/merging.hpp"
#include "layers/pooling.hpp"

namespace xtape::layers {

/// Makes a layer from its config (the "config" object of get_config's form).
using LayerFactory = std::function<std::shared_ptr<Layer>(const nlohmann::json& config)>;

/// Registers (or replaces) the factory of `class_name`. Throws std::invalid_argument on an
/// empty name or an empty factory.
void register_layer(const std::string& class_name, LayerFactory factory);
/// True when `class_name` has a factory.
bool is_registered(const std::string& class_name);

/// The options of the built-in layers read back from a config (unknown keys are ignored;
/// a key of the wrong type throws std::invalid_argument naming it).
DenseOptions dense_options_from_config(const nlohmann::json& config);
ConvOptions conv_options_from_config(const nlohmann::json& config);
PoolOptions pool_options_from_config(const nlohmann::json& config);
DropoutOptions dropout_options_from_config(const nlohmann::json& config);
ConcatenateOptions concatenate_options_from_config(const nlohmann::json& config);
inline DenseOptions options_from_config(const nlohmann::json& c, DenseOptions*) {
  return dense_options_from_config(c);
}
inline ConvOptions options_from_config(const nlohmann::json& c, ConvOptions*) {
  return conv_options_from_config(c);
}
inline PoolOptions options_from_config(const nlohmann::json& c, PoolOptions*) {
  return pool_options_from_config(c);
}
inline DropoutOptions options_from_config(const nlohmann::json& c, DropoutOptions*) {
  return dropout_options_from_config(c);
}

/// Sets what every layer's config holds besides its options (trainable).
void apply_base_config(Layer& layer, const nlohmann::json& config);

/// Registers `L`, built from `typename L::Options` read from the config.
template <class L>
void register_layer(const std::string& class_name) {
  register_layer(class_name, [](const nlohmann::json& config) -> std::shared_ptr<Layer> {
    auto layer = std::make_shared<L>(
        options_from_config(config, static_cast<typename L::Options*>(nullptr)));
    apply_base_config(*layer, config);
    return layer;
  });
}

/// A layer from {"class_name": ..., "config": {...}}. Throws std::invalid_argument naming the
/// class and how to register it when no factory is known, or naming the key that is wrong.
std::shared_ptr<Layer> layer_from_config(const nlohmann::json& entry);

}  // namespace xtape::layers
