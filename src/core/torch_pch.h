// Precompiled header for the torch translation units (see CMakeLists.txt).
#pragma once
#include <torch/torch.h>
