// Options that say how event files are read and cleaned, shared by every command
// that reads event logs (ingest, recommend --events, split, evaluate).
#pragma once

#include "command.hpp"
#include "segrec/ingest/ingest.hpp"

namespace segrec::cli {

/// Binds the reading and cleaning options of `segrec ingest` (all but --events
/// and --out) to `p`. `filters` = false leaves out --min-user-events and
/// --min-item-users (for commands that must keep every user and item).
void add_ingest_read_options(po::options_description& d, IngestParams& p, bool filters = true);

}  // namespace segrec::cli
