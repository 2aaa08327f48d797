#version 330 core
// Exact integer CARLA tags: an R8UI target has no blending and no filtering.
flat in int v_tag;
out uint f_tag;
void main() {
    f_tag = uint(v_tag);
}
