// A small residual CNN on Fashion-MNIST, written with the Functional API: a skip connection
// (Add) around two convolutions. It trains for 5 epochs, is saved with save_model, loaded back
// with load_model and evaluated on the test set.
//
// Usage: residual_fashion_mnist [--epochs N] [--seed S] [--limit N] [--verbose 0|1|2]
//                               [--model PATH]
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>

#include "xtape.hpp"

using namespace xtape;
using namespace xtape::layers;

static int run(int argc, char** argv) {
  int epochs = 5, verbose = 1;
  std::uint64_t seed = 1337;
  std::size_t limit = 0;
  std::string path = "residual_fashion_mnist.safetensors";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::cerr << "missing value after " << a << '\n';
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--epochs")
      epochs = std::atoi(next());
    else if (a == "--seed")
      seed = std::strtoull(next(), nullptr, 10);
    else if (a == "--limit")
      limit = std::strtoull(next(), nullptr, 10);
    else if (a == "--verbose")
      verbose = std::atoi(next());
    else if (a == "--model")
      path = next();
    else {
      std::cerr << "usage: " << argv[0]
                << " [--epochs N] [--seed S] [--limit N] [--verbose 0|1|2] [--model PATH]\n";
      return 2;
    }
  }
  set_random_seed(seed);

  Tensor x_train, y_train, x_test, y_test;
  {
    auto [train, test] = datasets::fashion_mnist::load_data();
    x_train = reshape(datasets::to_float(train.first, 1.f / 255.f), {-1, 28, 28, 1});
    x_test = reshape(datasets::to_float(test.first, 1.f / 255.f), {-1, 28, 28, 1});
    y_train = datasets::to_categorical(train.second, 10);
    y_test = datasets::to_categorical(test.second, 10);
  }
  if (limit > 0 && limit < x_train.dim(0)) {
    x_train = slice_rows(x_train, 0, limit);
    y_train = slice_rows(y_train, 0, limit);
  }

  const SymbolicTensor inputs = Input({28, 28, 1});
  SymbolicTensor x = make<Conv2D>(
      {.filters = 32, .kernel_size = {3, 3}, .padding = "same", .activation = "relu"})(inputs);
  x = make<MaxPooling2D>({.pool_size = {2, 2}})(x);
  // The residual block: x + conv(conv(x)), then relu.
  SymbolicTensor r = make<Conv2D>(
      {.filters = 32, .kernel_size = {3, 3}, .padding = "same", .activation = "relu"})(x);
  r = make<Conv2D>({.filters = 32, .kernel_size = {3, 3}, .padding = "same"})(r);
  x = make<Activation>("relu")(make<Add>()({x, r}));
  x = make<MaxPooling2D>({.pool_size = {2, 2}})(x);
  x = make<Conv2D>({.filters = 64, .kernel_size = {3, 3}, .activation = "relu"})(x);
  x = make<Flatten>()(x);
  x = make<Dropout>(0.3f)(x);
  const SymbolicTensor outputs = make<Dense>({.units = 10, .activation = "softmax"})(x);
  Model model(inputs, outputs, "residual_cnn");
  model.summary();

  model.compile("categorical_crossentropy", "adam", {"accuracy"});
  const History h = model.fit(
      x_train, y_train,
      {.batch_size = 128, .epochs = epochs, .validation_split = 0.1f, .verbose = verbose});
  double secs = 0;
  for (double s : h.epoch_seconds) secs += s;
  std::cout << "mean epoch time: "
            << (h.epoch_seconds.empty() ? 0.0 : secs / double(h.epoch_seconds.size())) << " s\n";

  save_model(model, path);
  std::cout << "saved to " << path << '\n';
  const std::shared_ptr<Model> loaded = load_model(path);
  const auto score = loaded->evaluate(x_test, y_test, {.batch_size = 128, .verbose = 0});
  const auto original = model.evaluate(x_test, y_test, {.batch_size = 128, .verbose = 0});
  std::cout << "test_loss: " << score.at("loss") << '\n'
            << "test_accuracy: " << score.at("accuracy") << '\n'
            << "loaded model agrees with the trained one: "
            << (score.at("loss") == original.at("loss") ? "yes" : "NO") << '\n';
  return score.at("loss") == original.at("loss") ? 0 : 1;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "residual_fashion_mnist: " << e.what() << '\n';
    return 1;
  }
}
