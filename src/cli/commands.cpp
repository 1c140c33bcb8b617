#include <cstdio>
#include <iostream>

#include "command.hpp"
#include "segrec/core/progress.hpp"

namespace segrec::cli {

void Context::say(const std::string& text) const {
  if (comm.is_root() && !common.quiet) {
    progress::clear_line();
    std::fputs(text.c_str(), stdout);
    if (!text.empty() && text.back() != '\n') std::fputc('\n', stdout);
    std::fflush(stdout);
  }
}

std::vector<std::unique_ptr<Command>> all_commands() {
  std::vector<std::unique_ptr<Command>> v;
  v.push_back(make_generate());
  v.push_back(make_ingest());
  v.push_back(make_profile());
  v.push_back(make_project());
  v.push_back(make_cluster());
  v.push_back(make_train());
  v.push_back(make_run());
  v.push_back(make_inspect());
  v.push_back(make_info());
  v.push_back(make_recommend());
  v.push_back(make_audience());
  v.push_back(make_similar());
  v.push_back(make_split());
  v.push_back(make_evaluate());
  return v;
}

}  // namespace segrec::cli
