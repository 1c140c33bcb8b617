// Registry of temporary output files. Outputs are written under a temporary
// name and renamed when complete; if the job aborts first, `main` removes
// whatever is still registered so nothing half-written is left behind.
#pragma once

#include <string>
#include <vector>

namespace segrec {

/// "<path>.tmp-<pid>-<n>": a temporary sibling of `path` (call on one rank, broadcast).
std::string temporary_name(const std::string& path);
void register_temporary(const std::string& path);
void unregister_temporary(const std::string& path);
/// Records a finished output (called where a temporary is renamed to `path`): the
/// command summary lists what a run wrote.
void record_output(const std::string& path);
/// Outputs recorded so far, in order, without repeats.
std::vector<std::string> recorded_outputs();
/// Unlinks every registered temporary (async-signal-unsafe; call from main's error path).
void remove_registered_temporaries() noexcept;

/// Writes `text` to `path` through a registered temporary and a rename (one rank;
/// throws IoError naming the file).
void write_file_atomically(const std::string& path, const std::string& text);

}  // namespace segrec
