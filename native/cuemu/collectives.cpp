// collectives.cpp: what a warp collective gives each lane, once every participating lane has
// arrived with its request (cuemu.cpp decides when). Shuffles and ballots follow shfl.sync and
// vote.sync; ldmatrix and mma.m16n8k16 (bf16 in, fp32 accumulate) use the fragment layouts of the
// PTX ISA ("Matrix fragments for mma.m16n8k16 with floating point type", "ldmatrix").
#include "collectives.h"

#include <cstdio>
#include <cstring>

namespace cf::emu {
namespace {

constexpr int kLanes = 32;

const char* name_of(Collective op) {
  switch (op) {
    case Collective::SyncWarp: return "sync_warp";
    case Collective::ShuffleXor: return "shuffle_xor";
    case Collective::ShuffleIdx: return "shuffle_idx";
    case Collective::ShuffleDown: return "shuffle_down";
    case Collective::ShuffleUp: return "shuffle_up";
    case Collective::Ballot: return "ballot";
    case Collective::LdMatrix: return "ldmatrix";
    case Collective::MmaBf16: return "mma_bf16_16816";
  }
  return "?";
}

bool has(unsigned mask, int lane) { return (mask >> lane) & 1u; }

// Shuffles read the source lane's value; a source outside the warp or outside the participants
// leaves the lane its own value (what shfl.sync does for out-of-range lanes).
void shuffle(Collective op, const WarpRequest* const requests[kLanes], unsigned participants, WarpResult results[kLanes]) {
  for (int lane = 0; lane < kLanes; ++lane) {
    if (!has(participants, lane)) continue;
    const WarpRequest& r = *requests[lane];
    int source = op == Collective::ShuffleXor    ? lane ^ r.parameter
                 : op == Collective::ShuffleIdx  ? r.parameter
                 : op == Collective::ShuffleDown ? lane + r.parameter
                                                 : lane - r.parameter;
    bool valid = source >= 0 && source < kLanes && has(participants, source);
    results[lane].word[0] = valid ? requests[source]->word[0] : r.word[0];
  }
}

void ballot(const WarpRequest* const requests[kLanes], unsigned participants, WarpResult results[kLanes]) {
  unsigned votes = 0;
  for (int lane = 0; lane < kLanes; ++lane) {
    if (has(participants, lane) && requests[lane]->word[0] != 0) votes |= 1u << lane;
  }
  for (int lane = 0; lane < kLanes; ++lane) {
    if (has(participants, lane)) results[lane].word[0] = votes;
  }
}

unsigned short load_b16(const void* row, int column) {
  unsigned short value;
  std::memcpy(&value, static_cast<const unsigned char*>(row) + 2 * column, sizeof value);
  return value;
}

// Lanes 8i..8i+7 name the rows of matrix i. Lane l receives, in register i, row l/4 and columns
// 2(l%4), 2(l%4)+1 of matrix i; with trans, rows 2(l%4), 2(l%4)+1 of column l/4.
void ldmatrix(const WarpRequest* const requests[kLanes], WarpResult results[kLanes]) {
  int matrices = requests[0]->parameter & 0xff;
  bool trans = (requests[0]->parameter >> 8) & 1;
  for (int lane = 0; lane < kLanes; ++lane) {
    for (int i = 0; i < matrices; ++i) {
      unsigned short low, high;
      if (trans) {
        low = load_b16(requests[8 * i + 2 * (lane % 4)]->address, lane / 4);
        high = load_b16(requests[8 * i + 2 * (lane % 4) + 1]->address, lane / 4);
      } else {
        low = load_b16(requests[8 * i + lane / 4]->address, 2 * (lane % 4));
        high = load_b16(requests[8 * i + lane / 4]->address, 2 * (lane % 4) + 1);
      }
      results[lane].word[i] = low | (static_cast<unsigned>(high) << 16);
    }
  }
}

float bf16_at(unsigned word, int half) { return float_of((half ? word & 0xffff0000u : word << 16)); }

// D = A·B + C. The 16 products of bf16 values are exact in double, their sum is rounded once:
// within an ulp or two of the tensor cores, which round their internal sum differently.
void mma_bf16(const WarpRequest* const requests[kLanes], WarpResult results[kLanes]) {
  float a[16][16], b[16][8], c[16][8];
  for (int lane = 0; lane < kLanes; ++lane) {
    const unsigned* w = requests[lane]->word;
    int group = lane >> 2, in_group = lane % 4;
    for (int i = 0; i < 8; ++i) {
      int row = (i < 2 || (i >= 4 && i < 6)) ? group : group + 8;
      int col = in_group * 2 + (i & 1) + (i >= 4 ? 8 : 0);
      a[row][col] = bf16_at(w[i / 2], i % 2);
    }
    for (int i = 0; i < 4; ++i) {
      int row = in_group * 2 + (i & 1) + (i >= 2 ? 8 : 0);
      b[row][group] = bf16_at(w[4 + i / 2], i % 2);
    }
    for (int i = 0; i < 4; ++i) c[group + (i >= 2 ? 8 : 0)][in_group * 2 + (i & 1)] = float_of(w[6 + i]);
  }
  for (int lane = 0; lane < kLanes; ++lane) {
    int group = lane >> 2, in_group = lane % 4;
    for (int i = 0; i < 4; ++i) {
      int row = group + (i >= 2 ? 8 : 0), col = in_group * 2 + (i & 1);
      double sum = c[row][col];
      for (int k = 0; k < 16; ++k) sum += static_cast<double>(a[row][k]) * b[k][col];
      results[lane].word[i] = bits_of(static_cast<float>(sum));
    }
  }
}

}  // namespace

bool resolve_collective(const WarpRequest* const requests[kLanes], unsigned participants, WarpResult results[kLanes], char* error, int error_size) {
  int first = __builtin_ctz(participants);
  const WarpRequest& lead = *requests[first];
  for (int lane = 0; lane < kLanes; ++lane) {
    if (!has(participants, lane)) continue;
    if (requests[lane]->op != lead.op || requests[lane]->mask != lead.mask) {
      std::snprintf(error, error_size, "lanes %d and %d of a warp meet at different collectives (%s with mask %08x, %s with mask %08x)",
                    first, lane, name_of(lead.op), lead.mask, name_of(requests[lane]->op), requests[lane]->mask);
      return false;
    }
  }
  bool whole_warp = participants == 0xffffffffu;
  switch (lead.op) {
    case Collective::SyncWarp: return true;
    case Collective::Ballot: ballot(requests, participants, results); return true;
    case Collective::LdMatrix:
    case Collective::MmaBf16:
      if (!whole_warp) {
        std::snprintf(error, error_size, "%s needs all 32 lanes of the warp; %08x took part", name_of(lead.op), participants);
        return false;
      }
      if (lead.op == Collective::LdMatrix) ldmatrix(requests, results);
      else mma_bf16(requests, results);
      return true;
    default: shuffle(lead.op, requests, participants, results); return true;
  }
}

const char* collective_name(Collective op) { return name_of(op); }

}  // namespace cf::emu
