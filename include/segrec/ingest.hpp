// `segrec ingest`: collect and clean behaviour events into dataset.h5.
#pragma once
