#include "training/progbar.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

namespace xtape::layers {

namespace {

std::string repeat(const char* s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

}  // namespace

Progbar::Progbar(std::size_t target, int verbose)
    : target_(target), verbose_(verbose), start_(Clock::now()) {
  tty_ = isatty(STDOUT_FILENO) != 0;
}

void Progbar::update(std::size_t current, const std::vector<std::pair<std::string, double>>& values,
                     bool final) {
  if (verbose_ == 0) return;
  const auto now = Clock::now();
  if (!final && (!tty_ || verbose_ != 1 || now - last_ < std::chrono::milliseconds(100))) return;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  std::ostringstream line;
  const std::string t = std::to_string(target_), c = std::to_string(current);
  line << ' ' << std::string(t.size() > c.size() ? t.size() - c.size() : 0, ' ') << c << '/' << t
       << ' ';
  const std::size_t filled = target_ ? 20 * current / target_ : 20;
  line << repeat("\u2501", filled) << std::string(20 - filled, ' ') << ' ';
  const double per_step = current ? elapsed / double(current) : 0.0;
  if (final) {
    line << static_cast<long>(elapsed) << "s ";
  } else {
    line << static_cast<long>(per_step * double(target_ - current)) << "s ";
  }
  char buf[32];
  if (per_step >= 1.0)
    std::snprintf(buf, sizeof buf, "%.0fs/step", per_step);
  else if (per_step >= 1e-3)
    std::snprintf(buf, sizeof buf, "%.0fms/step", per_step * 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0fus/step", per_step * 1e6);
  line << buf;
  for (const auto& [k, v] : values) {
    std::snprintf(buf, sizeof buf, "%.4f", v);
    line << " - " << k << ": " << buf;
  }
  std::string s = line.str();
  if (tty_ && verbose_ == 1) {
    std::cout << '\r' << s;
    if (s.size() < width_) std::cout << std::string(width_ - s.size(), ' ');
    width_ = std::max(width_, s.size());
    if (final) std::cout << '\n';
  } else {
    std::cout << s << '\n';
  }
  std::cout.flush();
}

}  // namespace xtape::layers
