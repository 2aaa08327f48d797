#version 330 core
// Shared by the lit and the label pass: `invariant` makes both rasterise identical depth,
// so the label pass matches the RGB pixels exactly.
uniform mat4 u_view_proj;
in vec3 in_pos;
in vec3 in_normal;
in vec3 in_color;
in vec3 in_params;  // material, CARLA tag, per-object seed
out vec3 v_pos;
out vec3 v_normal;
out vec3 v_color;
flat out int v_material;
flat out int v_tag;
flat out float v_seed;
invariant gl_Position;
void main() {
    v_pos = in_pos;
    v_normal = in_normal;
    v_color = in_color;
    v_material = int(in_params.x + 0.5);
    v_tag = int(in_params.y + 0.5);
    v_seed = in_params.z;
    gl_Position = u_view_proj * vec4(in_pos, 1.0);
}
