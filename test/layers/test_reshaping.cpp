// Tests of layers/reshaping.hpp: shapes and values of every reshaping layer against hand
// computations, gradients through the layer harness, bilinear upsampling against the
// half-pixel formula, errors and config keys.
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include "layers/reshaping.hpp"
#include "saving/registry.hpp"
#include "test/support/layer_harness.hpp"

using namespace xtape;
using namespace xtape::layers;
using xtape::testing::check_layer;
using xtape::testing::check_throws;

BOOST_AUTO_TEST_SUITE(layers_reshaping)

BOOST_AUTO_TEST_CASE(every_reshaping_layer_through_the_harness) {
  Reshape r({-1, 3});
  check_layer("Reshape", r, {.input = {2, 3, 2}, .expected_output = {4, 3}});
  Permute p({2, 1});
  check_layer("Permute", p, {.input = {3, 5}, .expected_output = {5, 3}});
  RepeatVector rv(4);
  check_layer("RepeatVector", rv, {.input = {3}, .expected_output = {4, 3}});
  ZeroPadding2D zp({{{1, 2}, {0, 1}}});
  check_layer("ZeroPadding2D", zp, {.input = {3, 3, 2}, .expected_output = {6, 4, 2}});
  ZeroPadding1D zp1({2, 0});
  check_layer("ZeroPadding1D", zp1, {.input = {3, 2}, .expected_output = {5, 2}});
  Cropping2D cr({{{1, 0}, {1, 1}}});
  check_layer("Cropping2D", cr, {.input = {4, 5, 2}, .expected_output = {3, 3, 2}});
  Cropping1D cr1({1, 2});
  check_layer("Cropping1D", cr1, {.input = {6, 2}, .expected_output = {3, 2}});
  UpSampling2D up({2, 3});
  check_layer("UpSampling2D nearest", up, {.input = {2, 2, 2}, .expected_output = {4, 6, 2}});
  UpSampling2D bl({2, 2}, "bilinear");
  check_layer("UpSampling2D bilinear", bl, {.input = {3, 2, 2}, .expected_output = {6, 4, 2}});
  UpSampling1D up1(3);
  check_layer("UpSampling1D", up1, {.input = {2, 2}, .expected_output = {6, 2}});
}

BOOST_AUTO_TEST_CASE(values_by_hand) {
  const Tensor x({1, 2, 2, 1}, {1.f, 2.f, 3.f, 4.f});
  BOOST_TEST(UpSampling2D({2, 2})(x).to_vector() ==
                 std::vector<float>({1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4}),
             boost::test_tools::per_element());
  // Half-pixel bilinear on one row [1, 3] by 2: sources -0.25, 0.25, 0.75, 1.25 -> clamped
  // ends, then 1 + 0.25 * 2 and 1 + 0.75 * 2.
  const Tensor row({1, 1, 2, 1}, {1.f, 3.f});
  BOOST_TEST(UpSampling2D({1, 2}, "bilinear")(row).to_vector() ==
                 std::vector<float>({1.f, 1.5f, 2.5f, 3.f}),
             boost::test_tools::per_element());
  BOOST_TEST(ZeroPadding2D({{{1, 0}, {0, 1}}})(x).to_vector() ==
                 std::vector<float>({0, 0, 0, 1, 2, 0, 3, 4, 0}),
             boost::test_tools::per_element());
  BOOST_TEST(Cropping2D({{{1, 0}, {0, 1}}})(x).to_vector() == std::vector<float>({3}),
             boost::test_tools::per_element());
  BOOST_TEST(Permute({2, 1})(Tensor({1, 2, 3}, {1, 2, 3, 4, 5, 6})).to_vector() ==
                 std::vector<float>({1, 4, 2, 5, 3, 6}),
             boost::test_tools::per_element());
  BOOST_TEST(RepeatVector(2)(Tensor({1, 2}, {7, 8})).to_vector() == std::vector<float>({7, 8, 7, 8}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(errors_and_configs) {
  check_throws<std::invalid_argument>("two -1", [] { Reshape({-1, -1}); }, {"Reshape", "-1"});
  check_throws<std::invalid_argument>("count", [] { Reshape({5})(Tensor({2, 3}, 1.f)); },
                                      {"Reshape", "(3,)", "(5,)"});
  check_throws<std::invalid_argument>("perm", [] { Permute({1, 3}); }, {"Permute", "permutation"});
  check_throws<std::invalid_argument>("crop all", [] { Cropping1D({2, 2})(Tensor({1, 4, 1}, 1.f)); },
                                      {"Cropping1D", "leaves nothing"});
  check_throws<std::invalid_argument>("interp", [] { UpSampling2D({2, 2}, "cubic"); },
                                      {"UpSampling2D", "'cubic'"});
  BOOST_TEST(Reshape({-1, 3}).get_config()["target_shape"] == nlohmann::json({-1, 3}));
  BOOST_TEST(ZeroPadding2D({{{1, 2}, {3, 4}}}).get_config()["padding"] ==
             nlohmann::json({{1, 2}, {3, 4}}));
  BOOST_TEST(UpSampling2D({2, 2}, "bilinear").get_config()["interpolation"] == "bilinear");
  // Every layer rebuilt from its config gives the same config; Keras's short forms read too.
  std::vector<std::shared_ptr<Layer>> all = {
      std::make_shared<Reshape>(std::vector<long>{-1, 3}), std::make_shared<Permute>(std::vector<int>{2, 1}),
      std::make_shared<RepeatVector>(3), std::make_shared<ZeroPadding1D>(std::array<std::size_t, 2>{1, 2}),
      std::make_shared<ZeroPadding2D>(), std::make_shared<Cropping1D>(), std::make_shared<Cropping2D>(),
      std::make_shared<UpSampling1D>(3), std::make_shared<UpSampling2D>(std::array<std::size_t, 2>{2, 2}, "bilinear")};
  for (const auto& l : all) {
    auto back = layer_from_config({{"class_name", l->class_name()}, {"config", l->get_config()}});
    BOOST_TEST(back->get_config() == l->get_config(), l->class_name());
  }
  auto short_form = layer_from_config(
      {{"class_name", "ZeroPadding2D"}, {"config", {{"name", "z"}, {"padding", 2}}}});
  BOOST_TEST(short_form->get_config()["padding"] == nlohmann::json({{2, 2}, {2, 2}}));
}

BOOST_AUTO_TEST_SUITE_END()
