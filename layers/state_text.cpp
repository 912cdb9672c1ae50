#include "layers/state_text.hpp"

#include <charconv>
#include <cstdio>

namespace xtape::layers {

std::string rng_state_text(const Rng::State& st) {
  std::string out;
  char buf[24];
  for (std::size_t i = 0; i < st.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(st[i]));
    if (i) out += ' ';
    out += buf;
  }
  return out;
}

std::optional<Rng::State> parse_rng_state(const std::string& text) {
  Rng::State st{};
  if (text.size() != 4 * 16 + 3) return std::nullopt;
  bool any = false;
  for (std::size_t i = 0; i < 4; ++i) {
    const char* b = text.data() + 17 * i;
    if (i < 3 && b[16] != ' ') return std::nullopt;
    const auto [end, ec] = std::from_chars(b, b + 16, st[i], 16);
    if (ec != std::errc() || end != b + 16) return std::nullopt;
    any = any || st[i] != 0;
  }
  if (!any) return std::nullopt;
  return st;
}

}  // namespace xtape::layers
