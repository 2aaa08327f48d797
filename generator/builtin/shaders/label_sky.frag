#version 330 core
// Sky wherever no geometry was drawn (drawn last, at the far plane, with a depth test).
out uint f_tag;
void main() {
    f_tag = 11u;
}
