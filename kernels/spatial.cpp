#include "kernels/spatial.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/compare.hpp"
#include "kernels/parallel.hpp"

namespace xtape::kernels {

namespace {

// The team for `rows` independent rows moving `bytes` in all.
int rows_team(double bytes, std::size_t rows) {
  return detail::parallel_team(detail::byte_ns(bytes), static_cast<std::int64_t>(rows));
}

// dst[k] = a * src[k] (first) or dst[k] += a * src[k] over n values.
void axpy(float a, const float* src, std::size_t n, float* dst, bool first) {
  if (first)
    for (std::size_t k = 0; k < n; ++k) dst[k] = a * src[k];
  else
    for (std::size_t k = 0; k < n; ++k) dst[k] = detail::madd(a, src[k], dst[k]);
}

// One row of w * sw pixels interpolated along w from a row of w pixels (c channels each).
void interpolate_row(const LinearTaps& t, std::size_t ow, std::size_t c, const float* src,
                     float* dst) {
  for (std::size_t o = 0; o < ow; ++o) {
    float* d = dst + o * c;
    const float* a = src + t.i0[o] * c;
    const float w0 = t.w0[o];
    if (!t.two[o]) {
      for (std::size_t k = 0; k < c; ++k) d[k] = w0 * a[k];
      continue;
    }
    const float* b = src + t.i1[o] * c;
    const float w1 = t.w1[o];
    for (std::size_t k = 0; k < c; ++k) d[k] = detail::madd(w1, b[k], w0 * a[k]);
  }
}

// Per source index i: the (output, weight) pairs that read it, outputs in increasing order.
struct Readers {
  std::vector<std::size_t> start;  // readers of i at [start[i], start[i + 1])
  std::vector<std::size_t> out;
  std::vector<float> weight;
};

Readers readers_of(const LinearTaps& t, std::size_t d) {
  const std::size_t n = t.i0.size();
  std::vector<std::vector<std::pair<std::size_t, float>>> per(d);
  for (std::size_t o = 0; o < n; ++o) {
    per[t.i0[o]].push_back({o, t.w0[o]});
    if (t.two[o]) per[t.i1[o]].push_back({o, t.w1[o]});
  }
  Readers r;
  r.start.push_back(0);
  for (std::size_t i = 0; i < d; ++i) {
    std::sort(per[i].begin(), per[i].end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [o, w] : per[i]) {
      r.out.push_back(o);
      r.weight.push_back(w);
    }
    r.start.push_back(r.out.size());
  }
  return r;
}

// The adjoint of interpolate_row: a row of w pixels from a row of w * sw.
void interpolate_row_adjoint(const Readers& r, std::size_t w, std::size_t c, const float* src,
                             float* dst) {
  for (std::size_t i = 0; i < w; ++i) {
    float* d = dst + i * c;
    if (r.start[i] == r.start[i + 1]) std::fill(d, d + c, 0.f);
    for (std::size_t k = r.start[i]; k < r.start[i + 1]; ++k)
      axpy(r.weight[k], src + r.out[k] * c, c, d, k == r.start[i]);
  }
}

}  // namespace

LinearTaps linear_taps(std::size_t d, std::size_t s) {
  const std::size_t n = d * s;
  LinearTaps t;
  t.i0.resize(n);
  t.i1.resize(n);
  t.w0.resize(n);
  t.w1.resize(n);
  t.two.resize(n);
  const long last = static_cast<long>(d) - 1;
  for (std::size_t o = 0; o < n; ++o) {
    const double src = (static_cast<double>(o) + 0.5) / static_cast<double>(s) - 0.5;
    const double lo = std::floor(src), frac = src - lo;
    const long i0 = std::clamp(static_cast<long>(lo), 0L, last);
    const long i1 = std::clamp(static_cast<long>(lo) + 1, 0L, last);
    float w0 = static_cast<float>(1 - frac), w1 = static_cast<float>(frac);
    bool two = true;
    if (i0 == i1) {
      w0 += w1;
      w1 = 0.f;
      two = false;
    } else if (w1 == 0.f) {
      two = false;
    }
    t.i0[o] = static_cast<std::size_t>(i0);
    t.i1[o] = static_cast<std::size_t>(two ? i1 : i0);
    t.w0[o] = w0;
    t.w1[o] = w1;
    t.two[o] = two ? 1 : 0;
  }
  return t;
}

void upsample_nearest(std::size_t n, std::size_t h, std::size_t w, std::size_t c, std::size_t sh,
                      std::size_t sw, const float* x, float* y) {
  const std::size_t ow = w * sw, orow = ow * c;
  // One task per input row: it writes its sh output rows (the first built, then copied).
  const std::size_t rows = n * h;
  detail::parallel_for_static(rows_team(4.0 * static_cast<double>(rows * orow * (sh + 1)), rows),
                              static_cast<long>(rows), [&](long r) {
                                const float* src = x + static_cast<std::size_t>(r) * w * c;
                                float* dst = y + static_cast<std::size_t>(r) * sh * orow;
                                if (c == 1) {
                                  for (std::size_t j = 0; j < w; ++j)
                                    std::fill(dst + j * sw, dst + j * sw + sw, src[j]);
                                } else {
                                  for (std::size_t j = 0; j < w; ++j)
                                    for (std::size_t b = 0; b < sw; ++b)
                                      std::memcpy(dst + (j * sw + b) * c, src + j * c,
                                                  c * sizeof(float));
                                }
                                for (std::size_t a = 1; a < sh; ++a)
                                  std::memcpy(dst + a * orow, dst, orow * sizeof(float));
                              });
}

void upsample_nearest_adjoint(std::size_t n, std::size_t h, std::size_t w, std::size_t c,
                              std::size_t sh, std::size_t sw, const float* g, float* dx) {
  const std::size_t orow = w * sw * c;
  const std::size_t rows = n * h;
  detail::parallel_for_static(rows_team(4.0 * static_cast<double>(rows * orow * sh), rows),
                              static_cast<long>(rows), [&](long r) {
                                const float* src = g + static_cast<std::size_t>(r) * sh * orow;
                                float* dst = dx + static_cast<std::size_t>(r) * w * c;
                                for (std::size_t a = 0; a < sh; ++a) {
                                  const float* row = src + a * orow;
                                  for (std::size_t j = 0; j < w; ++j) {
                                    float* d = dst + j * c;
                                    for (std::size_t b = 0; b < sw; ++b) {
                                      const float* s = row + (j * sw + b) * c;
                                      if (a == 0 && b == 0)
                                        std::memcpy(d, s, c * sizeof(float));
                                      else
                                        for (std::size_t k = 0; k < c; ++k) d[k] += s[k];
                                    }
                                  }
                                }
                              });
}

void upsample_bilinear(std::size_t n, std::size_t h, std::size_t w, std::size_t c, std::size_t sh,
                       std::size_t sw, const float* x, float* y) {
  const LinearTaps th = linear_taps(h, sh), tw = linear_taps(w, sw);
  const std::size_t oh = h * sh, ow = w * sw, irow = w * c, orow = ow * c;
  // One task per output row: the two input rows mixed along h, then interpolated along w.
  const std::size_t rows = n * oh;
  const int team = rows_team(8.0 * static_cast<double>(rows * orow), rows);
  detail::parallel_for_static(team, static_cast<long>(rows), [&](long r) {
    thread_local std::vector<float> mixed;
    mixed.resize(irow);
    const std::size_t i = static_cast<std::size_t>(r) / oh, o = static_cast<std::size_t>(r) % oh;
    const float* a = x + (i * h + th.i0[o]) * irow;
    const float w0 = th.w0[o];
    if (th.two[o]) {
      const float* b = x + (i * h + th.i1[o]) * irow;
      const float w1 = th.w1[o];
      for (std::size_t k = 0; k < irow; ++k) mixed[k] = detail::madd(w1, b[k], w0 * a[k]);
    } else {
      for (std::size_t k = 0; k < irow; ++k) mixed[k] = w0 * a[k];
    }
    interpolate_row(tw, ow, c, mixed.data(), y + static_cast<std::size_t>(r) * orow);
  });
}

void upsample_bilinear_adjoint(std::size_t n, std::size_t h, std::size_t w, std::size_t c,
                               std::size_t sh, std::size_t sw, const float* g, float* dx) {
  const LinearTaps th = linear_taps(h, sh), tw = linear_taps(w, sw);
  const Readers rh = readers_of(th, h), rw = readers_of(tw, w);
  const std::size_t oh = h * sh, irow = w * c, orow = w * sw * c;
  // One task per input row: the output rows that read it (in order), each taken back along w
  // and added with its weight along h.
  const std::size_t rows = n * h;
  const int team = rows_team(8.0 * static_cast<double>(n * oh * orow) * 2.0, rows);
  detail::parallel_for_static(team, static_cast<long>(rows), [&](long r) {
    thread_local std::vector<float> back;
    back.resize(irow);
    const std::size_t i = static_cast<std::size_t>(r) / h, j = static_cast<std::size_t>(r) % h;
    float* d = dx + static_cast<std::size_t>(r) * irow;
    if (rh.start[j] == rh.start[j + 1]) std::fill(d, d + irow, 0.f);
    for (std::size_t k = rh.start[j]; k < rh.start[j + 1]; ++k) {
      interpolate_row_adjoint(rw, w, c, g + (i * oh + rh.out[k]) * orow, back.data());
      axpy(rh.weight[k], back.data(), irow, d, k == rh.start[j]);
    }
  });
}

void pad_rows(std::size_t rows_out, const long* out_row_source, std::size_t d, std::size_t inner,
              std::size_t before, std::size_t after, const float* x, float fill, float* out) {
  const std::size_t len = (d + before + after) * inner, head = before * inner, body = d * inner;
  detail::parallel_for_static(rows_team(8.0 * static_cast<double>(rows_out * len), rows_out),
                              static_cast<long>(rows_out), [&](long r) {
                                float* o = out + static_cast<std::size_t>(r) * len;
                                const long s = out_row_source[r];
                                if (s < 0) {
                                  std::fill(o, o + len, fill);
                                  return;
                                }
                                std::fill(o, o + head, fill);
                                std::memcpy(o + head, x + static_cast<std::size_t>(s) * body,
                                            body * sizeof(float));
                                std::fill(o + head + body, o + len, fill);
                              });
}

void crop_rows(std::size_t rows_out, const long* out_row_source, std::size_t d, std::size_t inner,
               std::size_t before, std::size_t after, const float* g, float* dx) {
  const std::size_t len = (d + before + after) * inner, head = before * inner, body = d * inner;
  detail::parallel_for_static(rows_team(8.0 * static_cast<double>(rows_out * body), rows_out),
                              static_cast<long>(rows_out), [&](long r) {
                                const long s = out_row_source[r];
                                if (s >= 0)
                                  std::memcpy(dx + static_cast<std::size_t>(s) * body,
                                              g + static_cast<std::size_t>(r) * len + head,
                                              body * sizeof(float));
                              });
}

}  // namespace xtape::kernels
