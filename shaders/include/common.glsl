// Shared GLSL helpers for every kernel (shaders/include). Include after #version.
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : enable

// bf16 stored in the high half of an fp32: widen by shifting.
float bf16_to_f32(uint bits16) { return uintBitsToFloat(bits16 << 16); }
// The two bf16 values packed in one uint (low half first).
vec2 bf16_pair(uint v) { return vec2(uintBitsToFloat(v << 16), uintBitsToFloat(v & 0xFFFF0000u)); }
