// Copyright (c) Microsoft Corporation. All rights reserved.
// Licensed under the MIT License.

pub(crate) mod multi_bytes_stream;
pub(crate) mod partitioned_stream;
