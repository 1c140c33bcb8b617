// placeholder
#include "command.hpp"
namespace segrec::cli {
std::unique_ptr<Command> make_generate() { return nullptr; }
}  // namespace segrec::cli
