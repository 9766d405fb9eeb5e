# r2rec_model: checkpoints (safetensors) and, later, the transformer. Needs ATen.
add_library(r2rec_model STATIC safetensors.cpp transformer.cpp lora.cpp generation.cpp)
target_link_libraries(r2rec_model PUBLIC r2rec_core r2rec_torch PRIVATE nlohmann_json::nlohmann_json)
r2rec_target_warnings(r2rec_model)
r2rec_torch_pch(r2rec_model)
set_source_files_properties(safetensors.cpp PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
