#pragma once
// Forwarding header: the installed path of earlier releases; the header is segrec/core/error.hpp.
#include "segrec/core/error.hpp"
