#include "segrec/core/progress.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <limits>
#include <mutex>

#include "segrec/core/error.hpp"
#include "segrec/core/json.hpp"

namespace segrec::progress {

namespace {

using clock = std::chrono::steady_clock;

constexpr double kRedrawSeconds = 0.1;  // terminal line: at most ten redraws a second

struct State {
  bool on = false;  // configured and this process reports
  Options o;
  bool tty = false;
  std::FILE* json = nullptr;
  clock::time_point t0 = clock::now();
  double last_plain = 0;  // elapsed() at the last plain line
  double last_draw = -1;  // elapsed() at the last terminal redraw
  double last_json = 0;   // elapsed() at the last throttled JSON update
  bool line_open = false;
  std::vector<const Task*> live;  // tasks begun and not ended, oldest first
  std::mutex mutex;
};

State& state() {
  static State s;
  return s;
}

double since(clock::time_point t) {
  return std::chrono::duration<double>(clock::now() - t).count();
}

// Console figures: integers as such below a million, then 1.73M / 4.2G / 1.1T.
std::string number(double v) {
  if (!std::isfinite(v)) return "-";
  char buf[48];
  const double a = std::fabs(v);
  if (a >= 1e6 && a < 1e15) {
    const char* suffix = a >= 1e12 ? "T" : a >= 1e9 ? "G" : "M";
    const double scale = a >= 1e12 ? 1e12 : a >= 1e9 ? 1e9 : 1e6;
    std::snprintf(buf, sizeof buf, "%.3g%s", v / scale, suffix);
  } else if (v == std::floor(v) && a < 1e15)
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  else
    std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buf[48];
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
  else
    std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}

int terminal_width() {
  winsize w{};
  if (::ioctl(STDERR_FILENO, TIOCGWINSZ, &w) == 0 && w.ws_col >= 20) return w.ws_col;
  return 100;
}

void write_json(State& s, const std::string& body) {
  if (!s.json) return;
  std::fprintf(s.json, "{\"elapsed_s\":%s,\"ranks\":%d,%s%s}\n", json_number(since(s.t0)).c_str(),
               s.o.ranks,
               s.o.job_id.empty() ? "" : ("\"job_id\":" + json_string(s.o.job_id) + ",").c_str(),
               body.c_str());
  std::fflush(s.json);
}

void clear_line_locked(State& s) {
  if (s.line_open) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
    s.line_open = false;
  }
}

void plain_line(State& s, const std::string& text) {
  clear_line_locked(s);
  const double t = since(s.t0);
  const auto secs = static_cast<long long>(t);
  std::fprintf(stderr, "[%02lld:%02lld:%02lld] %s\n", secs / 3600, secs / 60 % 60, secs % 60,
               text.c_str());
  std::fflush(stderr);
  s.last_plain = t;
}

}  // namespace

std::string format_bytes(double bytes, int significant) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int u = 0;
  while (std::fabs(bytes) >= 1024 && u < 6) {
    bytes /= 1024;
    ++u;
  }
  char buf[64];
  if (significant > 0)
    std::snprintf(buf, sizeof buf, "%.*g %s", significant, bytes, units[u]);
  else
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  char buf[32];
  const auto s = static_cast<long long>(std::llround(seconds));
  if (seconds < 10)
    std::snprintf(buf, sizeof buf, "%.2f s", seconds);
  else if (seconds < 60)
    std::snprintf(buf, sizeof buf, "%.0f s", seconds);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s / 60 % 60);
  return buf;
}

std::string json_string(std::string_view v) { return json::str(std::string(v)); }

namespace {
// Units per second (see eta_seconds); 0 when there is no estimate.
double rate_of(double start, double first_done, double first_t, double done, double t) {
  if (first_t >= 0 && t - first_t > 0.5 && done > first_done)
    return (done - first_done) / (t - first_t);
  if (t > 0 && done > start) return (done - start) / t;
  return 0;
}
}  // namespace

double eta_seconds(double total, double start, double first_done, double first_t, double done,
                   double t) {
  const double rate = rate_of(start, first_done, first_t, done, t);
  if (total > 0 && rate > 0 && done < total) return (total - done) / rate;
  return std::numeric_limits<double>::quiet_NaN();
}

void configure(const Options& o) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.json) std::fclose(s.json);
  s.json = nullptr;
  s.o = o;
  s.on = false;
  s.t0 = clock::now();
  s.last_plain = s.last_json = 0;
  s.last_draw = -1;
  s.line_open = false;
  s.live.clear();
  s.tty = o.terminal < 0 ? ::isatty(STDERR_FILENO) != 0 : o.terminal > 0;
  if (!o.root) return;
  if (!o.json_path.empty()) {
    s.json = std::fopen(o.json_path.c_str(), "a");
    if (!s.json) throw IoError("--log-json: cannot write '" + o.json_path + "'");
  }
  s.on = true;
  if (s.json) {
    char when[32] = "";
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&now, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    write_json(s, "\"event\":\"start\",\"command\":" + json_string(o.command) + ",\"version\":" +
                      json_string(SEGREC_VERSION) + ",\"threads\":" + std::to_string(o.threads) +
                      ",\"time\":" + json_string(when));
  }
}

void finish(int exit_code, const std::vector<std::string>& outputs, double peak_mib) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.on) return;
  clear_line_locked(s);
  if (s.json) {
    std::string outs = "[";
    for (std::size_t i = 0; i < outputs.size(); ++i)
      outs.append(i ? "," : "").append(json_string(outputs[i]));
    write_json(s, "\"event\":\"end\",\"command\":" + json_string(s.o.command) +
                      ",\"exit_code\":" + std::to_string(exit_code) + ",\"peak_rss_mib\":" +
                      json_number(std::round(peak_mib * 10) / 10) + ",\"outputs\":" + outs + "]");
    std::fclose(s.json);
    s.json = nullptr;
  }
  s.on = false;
}

void reset() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.json) std::fclose(s.json);
  s.json = nullptr;
  s.on = false;
  s.line_open = false;
  s.live.clear();
}

double elapsed() { return since(state().t0); }

void clear_line() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  clear_line_locked(s);
}

void note(std::string_view stage, std::string_view text) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.on) return;
  write_json(
      s, "\"event\":\"note\",\"stage\":" + json_string(stage) + ",\"text\":" + json_string(text));
  if (s.o.verbosity == Verbosity::kVerbose)
    plain_line(s, std::string(stage) + ": " + std::string(text));
}

void warning(std::string_view stage, std::string_view text) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.on) return;
  write_json(s, "\"event\":\"warning\",\"stage\":" + json_string(stage) +
                    ",\"text\":" + json_string(text));
  if (s.o.verbosity == Verbosity::kQuiet) return;
  clear_line_locked(s);
  std::fprintf(stderr, "segrec: warning: %.*s\n", static_cast<int>(text.size()), text.data());
  std::fflush(stderr);
}

// ---- Task -----------------------------------------------------------------------------------

bool Task::active() { return state().on; }

Task::Task(std::string stage, std::string what, double total, std::string unit, bool total_is_limit)
    : stage_(std::move(stage)),
      what_(std::move(what)),
      unit_(std::move(unit)),
      total_(total),
      limit_(total_is_limit),
      t0_(clock::now()) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.on) return;
  s.live.push_back(this);
  if (!s.json) return;
  write_json(s, "\"event\":\"task_begin\",\"stage\":" + json_string(stage_) +
                    ",\"task\":" + json_string(what_) + ",\"total\":" + json_number(total_) +
                    ",\"unit\":" + json_string(unit_));
}

double Task::elapsed() const { return since(t0_); }

std::string Task::line() const {
  std::string out = stage_;
  if (!what_.empty()) out += ": " + what_;
  out += "  ";
  const bool bytes = unit_ == "B";
  const bool known = total_ > 0 && !limit_;
  if (has_part_) {
    out += unit_ + " " + number(part_.unit);
    if (total_ > 0)
      out.append(limit_ ? " (max " : "/").append(number(total_)).append(limit_ ? ")" : "");
    out.append("  ").append(part_name_).append(" ").append(number(part_.done));
    if (part_.total > 0) out.append("/").append(number(part_.total));
  } else if (bytes) {
    out += format_bytes(done_);
    if (known) out += " / " + format_bytes(total_);
  } else {
    out += unit_ + " " + number(done_);
    if (total_ > 0 && limit_)
      out.append(" (max ").append(number(total_)).append(")");
    else if (total_ > 0)
      out.append("/").append(number(total_));
  }
  if (known) {
    char pct[16];
    std::snprintf(pct, sizeof pct, " (%.0f%%)", 100.0 * std::min(1.0, done_ / total_));
    out += pct;
  }
  const double t = elapsed();
  // Most useful first: a narrow terminal cuts the end of the line.
  const double eta = eta_seconds(known ? total_ : 0, start_, first_done_, first_t_, done_, t);
  if (std::isfinite(eta)) out += "  ETA " + format_duration(eta);
  const double rate = rate_of(start_, first_done_, first_t_, done_, t);
  if (bytes && rate > 0) out += "  " + format_bytes(rate) + "/s";
  for (const auto& [name, value] : metrics_) out += "  " + name + " " + number(value);
  return out;
}

std::string Task::outer() const {
  const State& s = state();
  if (s.live.empty() || s.live.front() == this) return "";
  const Task& o = *s.live.front();
  if (!(o.total_ > 0) || o.limit_ || o.first_t_ < 0) return "";
  char pct[16];
  std::snprintf(pct, sizeof pct, " %.0f%%", 100.0 * std::min(1.0, o.done_ / o.total_));
  std::string out = "  | " + o.stage_ + (o.what_.empty() ? "" : ": " + o.what_) + pct;
  // As of the outer task's last update.
  const double eta = eta_seconds(o.total_, o.start_, o.first_done_, o.first_t_, o.done_, o.last_t_);
  if (std::isfinite(eta)) out += ", ETA " + format_duration(eta);
  return out;
}

void Task::update(double done, std::initializer_list<Metric> metrics, bool milestone) {
  State& s = state();
  if (!s.on) return;
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.on) return;
  done_ = done;
  has_part_ = false;
  report(metrics, milestone);
}

void Task::update_part(double done, const Part& part, std::initializer_list<Metric> metrics) {
  State& s = state();
  if (!s.on) return;
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.on) return;
  done_ = done;
  has_part_ = true;
  part_ = part;
  if (part_name_ != part.name) part_name_.assign(part.name);
  part_.name = part_name_;
  report(metrics, false);
}

// The reporting of update and update_part; s.mutex held, done_ and the part set.
void Task::report(std::initializer_list<Metric> metrics, bool milestone) {
  State& s = state();
  last_t_ = elapsed();
  if (first_t_ < 0) {
    first_t_ = last_t_;
    first_done_ = done_;
  }
  metrics_.resize(metrics.size());  // names reused: no allocation per update
  std::size_t i = 0;
  for (const auto& m : metrics) {
    if (metrics_[i].first != m.name) metrics_[i].first.assign(m.name);
    metrics_[i++].second = m.value;
  }
  const double now = since(s.t0);
  if (s.json && (milestone || now - s.last_json >= s.o.interval)) {
    write_json(s, json_fields("progress"));
    if (!milestone) s.last_json = now;
  }
  if (s.o.verbosity == Verbosity::kQuiet) return;
  if (milestone && s.o.verbosity == Verbosity::kVerbose) {
    plain_line(s, line() + outer());
    shown_ = true;
    shown_done_ = done_;
    return;
  }
  if (s.tty) {
    if (s.last_draw >= 0 && now - s.last_draw < kRedrawSeconds) return;
    std::string text = line() + outer();
    const bool known = total_ > 0 && !limit_;
    if (known) {
      constexpr int kBar = 20;
      const int fill = static_cast<int>(kBar * std::min(1.0, done_ / total_));
      std::string bar(kBar + 3, '.');
      bar.front() = '[';
      bar[kBar + 1] = ']';
      bar.back() = ' ';
      std::fill_n(bar.begin() + 1, std::max(0, std::min(kBar, fill)), '#');
      text.insert(0, bar);
    }
    const auto width = static_cast<std::size_t>(terminal_width() - 1);
    if (text.size() > width) text.resize(width);
    std::fprintf(stderr, "\r\033[K%s", text.c_str());
    std::fflush(stderr);
    s.line_open = true;
    s.last_draw = now;
  } else if (now - s.last_plain >= s.o.interval) {
    plain_line(s, line() + outer());
    shown_ = true;
    shown_done_ = done_;
  }
}

std::string Task::json_fields(const char* event) const {
  std::string ms = "{";
  for (std::size_t i = 0; i < metrics_.size(); ++i)
    ms.append(i ? "," : "")
        .append(json_string(metrics_[i].first))
        .append(":")
        .append(json_number(metrics_[i].second));
  return "\"event\":" + json_string(event) + ",\"stage\":" + json_string(stage_) +
         ",\"task\":" + json_string(what_) + ",\"step\":" + json_number(done_) +
         ",\"total\":" + json_number(total_) + ",\"unit\":" + json_string(unit_) +
         ",\"task_elapsed_s\":" + json_number(elapsed()) + ",\"metrics\":" + ms + "}";
}

Task::~Task() {
  State& s = state();
  if (!s.on) return;
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.on) return;
  s.live.erase(std::remove(s.live.begin(), s.live.end(), this), s.live.end());
  if (s.json) {
    write_json(s, json_fields("task_end"));
  }
  if (s.o.verbosity == Verbosity::kQuiet) return;
  clear_line_locked(s);
  // A batch log that showed the task also shows how it ended.
  if (first_t_ < 0 || !(shown_ || s.o.verbosity == Verbosity::kVerbose)) return;
  // The closing line repeats the state only when the last line shown did not have it.
  const std::string done_in = "done in " + format_duration(elapsed());
  if (shown_done_ == done_)
    plain_line(s, std::string(stage_)
                      .append(what_.empty() ? "" : ": ")
                      .append(what_)
                      .append("  ")
                      .append(done_in));
  else
    plain_line(s, line() + "  " + done_in);
}

}  // namespace segrec::progress
