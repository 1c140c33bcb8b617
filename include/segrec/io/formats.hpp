// Every kind of file segrec writes: the format name and version that h5::File::create stamps
// and h5::File::open checks. Each file's layout is in docs/hdf5-schema.md and beside the
// stage that writes it.
#pragma once

#include "segrec/io/h5.hpp"

namespace segrec {

inline const h5::Format kDatasetFormat{"segrec-dataset", 1};        // ingest: dataset.h5
inline const h5::Format kProfilesFormat{"segrec-profiles", 1};      // profile: profiles.h5
inline const h5::Format kProjectionFormat{"segrec-projection", 1};  // project: projection.h5
inline const h5::Format kSegmentsFormat{"segrec-segments", 1};      // cluster: segments.h5
inline const h5::Format kModelFormat{"segrec-model", 1};            // train: model.h5
inline const h5::Format kTrainCheckpointFormat{"segrec-train-checkpoint", 1};  // train
inline const h5::Format kRecommendationsFormat{"segrec-recommendations", 1};   // recs.h5

}  // namespace segrec
