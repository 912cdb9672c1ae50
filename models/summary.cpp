// Model::summary: Keras 3's table as its rich console prints it on an 80-column terminal.
#include <cstdio>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "layers/core.hpp"
#include "layers/node.hpp"
#include "models/graph.hpp"
#include "models/model.hpp"
#include "models/sequential.hpp"

namespace xtape::layers {

namespace {

std::string with_commas(std::size_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3)
    s.insert(static_cast<std::size_t>(i), ",");
  return s;
}

std::string readable_bytes(double bytes) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2f %s", bytes, units[u]);
  return buf;
}

std::string repeat(const char* s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

// Display columns of UTF-8 text (every code point one column: the table's text is ASCII and
// the ellipsis).
std::size_t columns(const std::string& s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Greedy word wrap at spaces into lines of at most `width` columns; a word longer than the
// width is cut and ends in an ellipsis, as rich's default overflow does.
std::vector<std::string> wrap(const std::string& text, std::size_t width) {
  std::vector<std::string> words, lines;
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t sp = text.find(' ', start);
    const std::string w =
        text.substr(start, sp == std::string::npos ? std::string::npos : sp - start);
    if (!w.empty()) words.push_back(w);
    if (sp == std::string::npos) break;
    start = sp + 1;
  }
  std::string line;
  for (std::string w : words) {
    if (columns(w) > width) w = w.substr(0, width - 1) + "\u2026";
    if (line.empty()) {
      line = w;
    } else if (columns(line) + 1 + columns(w) <= width) {
      line += " " + w;
    } else {
      lines.push_back(line);
      line = w;
    }
  }
  if (!line.empty() || lines.empty()) lines.push_back(line);
  return lines;
}

struct Table {
  std::vector<std::size_t> widths;  // per column, including one space of padding each side
  std::vector<bool> right;          // right-aligned columns
  std::ostream& os;

  void rule(const char* l, const char* m, const char* r, const char* h) const {
    os << l;
    for (std::size_t i = 0; i < widths.size(); ++i) os << (i ? m : "") << repeat(h, widths[i]);
    os << r << '\n';
  }
  void row(const std::vector<std::string>& cells, const char* bar) const {
    std::vector<std::vector<std::string>> lines;
    std::size_t height = 1;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      lines.push_back(wrap(cells[i], widths[i] - 2));
      height = std::max(height, lines.back().size());
    }
    for (std::size_t k = 0; k < height; ++k) {
      os << bar;
      for (std::size_t i = 0; i < cells.size(); ++i) {
        const std::string t = k < lines[i].size() ? lines[i][k] : "";
        const std::string pad(widths[i] - 2 - columns(t), ' ');
        os << ' ' << (right[i] ? pad + t : t + pad) << ' ' << bar;
      }
      os << '\n';
    }
  }
};

std::string shapes_text(const std::vector<Shape>& shapes) {
  if (shapes.size() == 1) return batch_shape_str(shapes[0]);
  std::string s = "[";
  for (std::size_t i = 0; i < shapes.size(); ++i) s += (i ? ", " : "") + batch_shape_str(shapes[i]);
  return s + "]";
}

std::string params_text(const Layer& l) {
  return l.built() ? with_commas(l.count_params()) : "0 (unbuilt)";
}

}  // namespace

void Model::summary() const { summary(std::cout); }

void Model::summary(std::ostream& os) const {
  struct Row {
    std::string label, shape, params, connected;
  };
  std::vector<Row> rows;
  bool connections = false;
  if (graph_) {
    // Keras prints a chain of single-input nodes, each layer used once, without the
    // "Connected to" column.
    std::set<const Layer*> seen;
    for (const auto& n : graph_->nodes)
      if (n->inputs.size() > 1 || !seen.insert(n->layer.get()).second) connections = true;
    std::vector<const Layer*> order;
    std::set<const Layer*> listed;
    for (const auto& n : graph_->nodes)
      if (listed.insert(n->layer.get()).second) order.push_back(n->layer.get());
    std::set<const detail::SymbolicNode*> mine;
    for (const auto& n : graph_->nodes) mine.insert(n.get());
    if (!connections && graph_->outputs.size() > 1) connections = true;
    for (const Layer* l : order) {
      Row r{l->name() + " (" + l->class_name() + ")", "", params_text(*l), ""};
      for (const auto& n : graph_->nodes) {
        if (n->layer.get() != l) continue;
        if (r.shape.empty()) r.shape = shapes_text(n->output_shapes);
        for (const SymbolicTensor& t : n->inputs)
          r.connected += (r.connected.empty() ? "" : ", ") + t.node()->layer->name() + "[" +
                         std::to_string(t.node()->node_index) + "][" + std::to_string(t.index()) +
                         "]";
      }
      if (r.connected.empty()) r.connected = "-";
      rows.push_back(r);
    }
  } else {
    const bool stack = dynamic_cast<const Sequential*>(this) != nullptr;
    Shape s = input_shape();
    for (const auto& l : layers()) {
      const bool input = dynamic_cast<const InputLayer*>(l.get()) != nullptr;
      if (stack && input) continue;
      Row r{l->name() + " (" + l->class_name() + ")", "?", params_text(*l), ""};
      if (stack && built()) {
        s = l->compute_output_shape(s);
        r.shape = batch_shape_str(s);
      } else if (!stack && l->built()) {
        r.shape = shapes_text(l->compute_output_shapes(l->input_shapes()));
      }
      rows.push_back(r);
    }
  }

  const Table t = connections ? Table{{21, 19, 12, 19}, {false, false, true, false}, os}
                              : Table{{33, 27, 12}, {false, false, true}, os};
  auto cells = [&](const Row& r) {
    std::vector<std::string> c = {r.label, r.shape, r.params};
    if (connections) c.push_back(r.connected);
    return c;
  };
  os << "Model: \"" << name() << "\"\n";
  t.rule("\u250f", "\u2533", "\u2513", "\u2501");
  std::vector<std::string> head = {"Layer (type)", "Output Shape", "Param #"};
  if (connections) head.push_back("Connected to");
  t.row(head, "\u2503");
  t.rule("\u2521", "\u2547", "\u2529", "\u2501");
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i) t.rule("\u251c", "\u253c", "\u2524", "\u2500");
    t.row(cells(rows[i]), "\u2502");
  }
  t.rule("\u2514", "\u2534", "\u2518", "\u2500");
  std::size_t total = 0, trainable = 0;
  for (const Weight& w : weights()) {
    total += w.value.size();
    if (w.trainable) trainable += w.value.size();
  }
  os << " Total params: " << with_commas(total) << " (" << readable_bytes(4.0 * double(total))
     << ")\n";
  os << " Trainable params: " << with_commas(trainable) << " ("
     << readable_bytes(4.0 * double(trainable)) << ")\n";
  os << " Non-trainable params: " << with_commas(total - trainable) << " ("
     << readable_bytes(4.0 * double(total - trainable)) << ")\n";
}

}  // namespace xtape::layers
