// placeholder
#include "command.hpp"
namespace segrec::cli {
std::unique_ptr<Command> make_ingest() { return nullptr; }
}  // namespace segrec::cli
