#include "optim/optimizers.hpp"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace xtape::optim {

std::unique_ptr<Optimizer> make_optimizer(const std::string& name) {
  std::string key = name;
  std::transform(key.begin(), key.end(), key.begin(),
                 [](unsigned char ch) { return std::tolower(ch); });
  if (key == "sgd") return std::make_unique<SGD>();
  if (key == "adam") return std::make_unique<Adam>();
  if (key == "adamw") return std::make_unique<AdamW>();
  if (key == "rmsprop") return std::make_unique<RMSprop>();
  if (key == "adagrad") return std::make_unique<Adagrad>();
  if (key == "adadelta") return std::make_unique<Adadelta>();
  if (key == "adamax") return std::make_unique<Adamax>();
  if (key == "nadam") return std::make_unique<Nadam>();
  if (key == "lion") return std::make_unique<Lion>();
  throw std::invalid_argument("make_optimizer: unknown optimizer '" + name +
                              "'; expected one of: sgd, adam, adamw, rmsprop, adagrad, adadelta, "
                              "adamax, nadam, lion");
}

}  // namespace xtape::optim
