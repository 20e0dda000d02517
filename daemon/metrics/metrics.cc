#include "ringcache/metrics/metrics.h"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <set>

namespace ringcache::metrics {
namespace {

// Programmer errors in registration: report and abort in every build type.
[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "ringcache::metrics: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Prometheus spellings for the special values; integers below 1e15 as integers; otherwise
// the shortest round-trip digits laid out like Go's strconv.FormatFloat(v, 'g', -1, 64),
// which is what the reference client prints: exponent form when the decimal exponent is
// < -4 or >= 6 ("5e-05", "1.5e+07"), plain decimals otherwise ("0.0005", "2.5").
std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::trunc(v) == v && std::fabs(v) < 1e15) {
    return std::to_string(static_cast<int64_t>(v));
  }
  char buf[64];
  std::to_chars_result r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  assert(r.ec == std::errc());
  std::string sci(buf, r.ptr);
  int exponent = std::atoi(sci.c_str() + sci.find('e') + 1);
  if (exponent < -4 || exponent >= 6) return sci;
  r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::fixed);
  assert(r.ec == std::errc());
  return std::string(buf, r.ptr);
}

std::string FormatUint(uint64_t v) { return std::to_string(v); }

// HELP text: backslash and newline are escaped.
void AppendEscapedHelp(std::string* out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

// Label values: backslash, double quote and newline are escaped.
void AppendEscapedLabelValue(std::string* out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out->append("\\\\");
    } else if (c == '"') {
      out->append("\\\"");
    } else if (c == '\n') {
      out->append("\\n");
    } else {
      out->push_back(c);
    }
  }
}

void AppendHeader(std::string* out, std::string_view name, std::string_view help,
                  std::string_view type) {
  out->append("# HELP ").append(name).push_back(' ');
  AppendEscapedHelp(out, help);
  out->append("\n# TYPE ").append(name).push_back(' ');
  out->append(type).push_back('\n');
}

// `{a="x",b="y"}`, plus an optional trailing `le` label; nothing if there are no labels.
void AppendLabels(std::string* out, const std::vector<std::string>& names,
                  const std::vector<std::string>& values, const std::string* le = nullptr) {
  if (names.empty() && le == nullptr) return;
  out->push_back('{');
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out->push_back(',');
    out->append(names[i]).append("=\"");
    AppendEscapedLabelValue(out, values[i]);
    out->push_back('"');
  }
  if (le != nullptr) {
    if (!names.empty()) out->push_back(',');
    out->append("le=\"").append(*le).push_back('"');
  }
  out->push_back('}');
}

void AppendSample(std::string* out, std::string_view name, std::string_view suffix,
                  const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values, const std::string& value,
                  const std::string* le = nullptr) {
  out->append(name).append(suffix);
  AppendLabels(out, label_names, label_values, le);
  out->push_back(' ');
  out->append(value).push_back('\n');
}

// Validates and drops a trailing +Inf. Aborts on invalid bounds.
std::vector<double> NormalizeBounds(std::vector<double> bounds) {
  Status s = ValidateBucketBounds(bounds);
  if (!s.ok()) Die(s.message());
  if (std::isinf(bounds.back())) bounds.pop_back();
  return bounds;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Validation

Status ValidateMetricName(std::string_view name) {
  bool ok = !name.empty() && (IsAlpha(name[0]) || name[0] == '_' || name[0] == ':');
  for (size_t i = 1; ok && i < name.size(); ++i) {
    char c = name[i];
    ok = IsAlpha(c) || IsDigit(c) || c == '_' || c == ':';
  }
  if (ok) return Status::Ok();
  return Status::InvalidArgument("invalid metric name \"" + std::string(name) +
                                 "\": must match [a-zA-Z_:][a-zA-Z0-9_:]*");
}

Status ValidateLabelName(std::string_view name) {
  bool ok = !name.empty() && (IsAlpha(name[0]) || name[0] == '_');
  for (size_t i = 1; ok && i < name.size(); ++i) {
    char c = name[i];
    ok = IsAlpha(c) || IsDigit(c) || c == '_';
  }
  if (!ok) {
    return Status::InvalidArgument("invalid label name \"" + std::string(name) +
                                   "\": must match [a-zA-Z_][a-zA-Z0-9_]*");
  }
  if (name.size() >= 2 && name[0] == '_' && name[1] == '_') {
    return Status::InvalidArgument("invalid label name \"" + std::string(name) +
                                   "\": names starting with \"__\" are reserved");
  }
  return Status::Ok();
}

Status ValidateBucketBounds(const std::vector<double>& bounds) {
  size_t finite = bounds.size();
  if (finite > 0 && std::isinf(bounds.back()) && bounds.back() > 0) --finite;
  if (finite == 0) {
    return Status::InvalidArgument("histogram needs at least one finite bucket bound");
  }
  for (size_t i = 0; i < finite; ++i) {
    if (!std::isfinite(bounds[i])) {
      return Status::InvalidArgument("histogram bucket bound " + FormatDouble(bounds[i]) +
                                     " is not finite");
    }
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      return Status::InvalidArgument("histogram bucket bounds must be strictly increasing (" +
                                     FormatDouble(bounds[i - 1]) + " then " +
                                     FormatDouble(bounds[i]) + ")");
    }
  }
  return Status::Ok();
}

const std::vector<double>& DefaultLatencyBuckets() {
  static const std::vector<double> kBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                               0.005,   0.01,   0.025,   0.05,   0.1,   0.25,
                                               0.5,     1,      2.5,     5,      10};
  return kBuckets;
}

// ---------------------------------------------------------------------------------------
// Histogram

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(NormalizeBounds(std::move(upper_bounds))),
      buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}

void Histogram::Observe(double value) {
  size_t i = bounds_.size();  // +Inf, also for NaN.
  if (!std::isnan(value)) {
    i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) -
                            bounds_.begin());
  }
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Collect() const {
  Snapshot s;
  s.upper_bounds = bounds_;
  s.cumulative_counts.resize(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative_counts[i] = total;
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

// ---------------------------------------------------------------------------------------
// Family

template <typename T>
Family<T>::Family(std::string name, std::string help, std::vector<std::string> label_names,
                  std::vector<double> bucket_bounds)
    : name_(std::move(name)),
      help_(std::move(help)),
      label_names_(std::move(label_names)),
      bucket_bounds_(std::move(bucket_bounds)) {}

template <typename T>
T& Family<T>::WithLabels(const std::vector<std::string>& values) {
  if (values.size() != label_names_.size()) {
    Die("metric " + name_ + " has " + std::to_string(label_names_.size()) +
        " label(s) but WithLabels got " + std::to_string(values.size()) + " value(s)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = children_.find(values);
  if (it == children_.end()) {
    std::unique_ptr<T> child;
    if constexpr (std::is_same_v<T, Histogram>) {
      child = std::make_unique<Histogram>(bucket_bounds_);
    } else {
      child = std::make_unique<T>();
    }
    it = children_.emplace(values, std::move(child)).first;
  }
  return *it->second;
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---------------------------------------------------------------------------------------
// Writer

void Writer::Counter(std::string_view name, std::string_view help, uint64_t value,
                     const LabelPairs& labels) {
  Add(Type::kCounter, name, help, labels, FormatUint(value));
}

void Writer::Gauge(std::string_view name, std::string_view help, double value,
                   const LabelPairs& labels) {
  Add(Type::kGauge, name, help, labels, FormatDouble(value));
}

void Writer::Add(Type type, std::string_view name, std::string_view help, const LabelPairs& labels,
                 std::string value) {
  bool valid = ValidateMetricName(name).ok() &&
               !std::binary_search(reserved_->begin(), reserved_->end(), name);
  for (const auto& [label, unused] : labels) valid = valid && ValidateLabelName(label).ok();
  auto it = families_.find(name);
  if (it != families_.end() && it->second.type != type) valid = false;
  if (!valid) {
    assert(false && "Writer: invalid metric or label name, a registered name, or a type clash");
    return;
  }
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), FamilyData{type, std::string(help), {}}).first;
  }
  it->second.samples.emplace_back(labels, std::move(value));
}

// ---------------------------------------------------------------------------------------
// MetricsRegistry

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

void MetricsRegistry::RegisterNameLocked(const std::string& name,
                                         const std::vector<std::string>& label_names,
                                         bool histogram) {
  if (Status s = ValidateMetricName(name); !s.ok()) Die(s.message());
  auto pos = std::lower_bound(names_.begin(), names_.end(), name);
  if (pos != names_.end() && *pos == name) Die("metric " + name + " registered twice");
  std::set<std::string_view> seen;
  for (const std::string& label : label_names) {
    if (Status s = ValidateLabelName(label); !s.ok()) Die("metric " + name + ": " + s.message());
    if (histogram && label == "le") Die("histogram " + name + " may not use the label \"le\"");
    if (!seen.insert(label).second) Die("metric " + name + ": label " + label + " repeated");
  }
  names_.insert(pos, name);
}

CounterFamily& MetricsRegistry::AddCounterFamily(std::string name, std::string help,
                                                 std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  RegisterNameLocked(name, label_names, /*histogram=*/false);
  counters_.emplace_back(
      new CounterFamily(std::move(name), std::move(help), std::move(label_names), {}));
  return *counters_.back();
}

GaugeFamily& MetricsRegistry::AddGaugeFamily(std::string name, std::string help,
                                             std::vector<std::string> label_names) {
  std::lock_guard<std::mutex> lock(mu_);
  RegisterNameLocked(name, label_names, /*histogram=*/false);
  gauges_.emplace_back(
      new GaugeFamily(std::move(name), std::move(help), std::move(label_names), {}));
  return *gauges_.back();
}

HistogramFamily& MetricsRegistry::AddHistogramFamily(std::string name, std::string help,
                                                     std::vector<std::string> label_names,
                                                     std::vector<double> bucket_bounds) {
  std::vector<double> bounds = NormalizeBounds(std::move(bucket_bounds));
  std::lock_guard<std::mutex> lock(mu_);
  RegisterNameLocked(name, label_names, /*histogram=*/true);
  histograms_.emplace_back(new HistogramFamily(std::move(name), std::move(help),
                                               std::move(label_names), std::move(bounds)));
  return *histograms_.back();
}

Counter& MetricsRegistry::AddCounter(std::string name, std::string help) {
  return AddCounterFamily(std::move(name), std::move(help), {}).WithLabels({});
}

Gauge& MetricsRegistry::AddGauge(std::string name, std::string help) {
  return AddGaugeFamily(std::move(name), std::move(help), {}).WithLabels({});
}

Histogram& MetricsRegistry::AddHistogram(std::string name, std::string help,
                                         std::vector<double> bucket_bounds) {
  return AddHistogramFamily(std::move(name), std::move(help), {}, std::move(bucket_bounds))
      .WithLabels({});
}

void MetricsRegistry::AddCollector(std::function<void(Writer&)> collector) {
  std::lock_guard<std::mutex> lock(mu_);
  collectors_.push_back(std::move(collector));
}

std::string MetricsRegistry::Render() const {
  // name -> rendered block; std::map keeps the output sorted by name.
  std::map<std::string_view, std::string> blocks;
  std::lock_guard<std::mutex> lock(mu_);

  for (const auto& family : counters_) {
    std::lock_guard<std::mutex> family_lock(family->mu_);
    if (family->children_.empty()) continue;
    std::string& out = blocks[family->name()];
    AppendHeader(&out, family->name(), family->help(), "counter");
    for (const auto& [values, counter] : family->children_) {
      AppendSample(&out, family->name(), "", family->label_names(), values,
                   FormatUint(counter->Value()));
    }
  }
  for (const auto& family : gauges_) {
    std::lock_guard<std::mutex> family_lock(family->mu_);
    if (family->children_.empty()) continue;
    std::string& out = blocks[family->name()];
    AppendHeader(&out, family->name(), family->help(), "gauge");
    for (const auto& [values, gauge] : family->children_) {
      AppendSample(&out, family->name(), "", family->label_names(), values,
                   FormatDouble(gauge->Value()));
    }
  }
  for (const auto& family : histograms_) {
    std::lock_guard<std::mutex> family_lock(family->mu_);
    if (family->children_.empty()) continue;
    std::string& out = blocks[family->name()];
    AppendHeader(&out, family->name(), family->help(), "histogram");
    for (const auto& [values, histogram] : family->children_) {
      Histogram::Snapshot snap = histogram->Collect();
      for (size_t i = 0; i < snap.cumulative_counts.size(); ++i) {
        std::string le = i < snap.upper_bounds.size() ? FormatDouble(snap.upper_bounds[i]) : "+Inf";
        AppendSample(&out, family->name(), "_bucket", family->label_names(), values,
                     FormatUint(snap.cumulative_counts[i]), &le);
      }
      AppendSample(&out, family->name(), "_sum", family->label_names(), values,
                   FormatDouble(snap.sum));
      AppendSample(&out, family->name(), "_count", family->label_names(), values,
                   FormatUint(snap.count));
    }
  }

  Writer writer(&names_);
  for (const auto& collector : collectors_) collector(writer);
  for (auto& [name, data] : writer.families_) {
    std::string& out = blocks[name];
    AppendHeader(&out, name, data.help, data.type == Writer::Type::kCounter ? "counter" : "gauge");
    std::stable_sort(data.samples.begin(), data.samples.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (const auto& [labels, value] : data.samples) {
      std::vector<std::string> label_names;
      std::vector<std::string> label_values;
      for (const auto& [label, label_value] : labels) {
        label_names.push_back(label);
        label_values.push_back(label_value);
      }
      AppendSample(&out, name, "", label_names, label_values, value);
    }
  }

  size_t total = 0;
  for (const auto& [name, block] : blocks) total += block.size();
  std::string result;
  result.reserve(total);
  for (const auto& [name, block] : blocks) result.append(block);
  return result;
}

}  // namespace ringcache::metrics
