#pragma once
// Forwarding header: the installed path of earlier releases; the header is segrec/core/comm.hpp.
#include "segrec/core/comm.hpp"
