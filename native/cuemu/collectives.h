// collectives.h: resolving a warp collective once all its lanes have arrived (collectives.cpp).
#pragma once
#include "../../kernels/common.cuh"

namespace cf::emu {

// Fills results[l] for every lane l in `participants` from the lanes' requests (requests[l] is
// valid for those lanes). False, with a message in `error`, when the lanes disagree about the
// collective or it needs lanes that did not take part.
bool resolve_collective(const WarpRequest* const requests[32], unsigned participants, WarpResult results[32], char* error, int error_size);

const char* collective_name(Collective op);

}  // namespace cf::emu
