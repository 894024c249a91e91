// Shared GLSL helpers for every kernel (shaders/include). Include after #version.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable

// bf16 stored in the high half of an fp32: widen by shifting.
float bf16_to_f32(uint bits16) { return uintBitsToFloat(bits16 << 16); }
