// `segrec evaluate` with a sequence model (model.h5 of kind "sequence").
//
// Each test user's fold-in events, in time order (e.g. foldin.csv of `split
// --temporal-last`), are the history: the GRU reads its last L events on items the model
// knows (as `segrec recommend --events`), scores every item, and the items of the history
// are skipped. The ranking covers the whole catalogue, so the cut-off metrics and the
// full-ranking HR@N / NDCG@N / MRR are those of evaluate.hpp, in the same table and JSON.
// One system, "model" (the model holds no popularity counts: evaluate a
// `--model-kind popularity` model for that baseline); coverage as for bag models,
// pop-rank 0. Users whose fold-in events are all on unknown items get empty lists
// (misses). Users are partitioned over ranks by ingest; sums are allreduced.
#pragma once

#include "segrec/core/comm.hpp"
#include "segrec/serving/evaluate.hpp"

namespace segrec {

/// Collective. The metrics of a sequence model (p validated; the JSON is not written).
EvaluateResult evaluate_sequence(const EvaluateParams& p, const Comm& comm);

}  // namespace segrec
