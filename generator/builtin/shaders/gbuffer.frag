#version 330 core
// G-buffer pass: everything about a surface that does not depend on the weather, once per
// layout. The lighting pass (light.frag) then runs once per appearance on these targets.
//#include noise.glsl
#define ASPHALT 1
#define MARKING 2
#define PAVING 3
#define FACADE 4
#define FOLIAGE 5
#define GRASS 6
#define PAINT 7
#define GLASS 8
#define LAMP 9
#define HEADLIGHT 10
#define TAILLIGHT 11
#define SIGNAL 12
#define CONCRETE 13
#define METAL 14
#define CLOTH 15
#define SKIN 16
#define BARK 17
#define RUBBER 18
#define SIGNFACE 19


in vec3 v_pos;
in vec3 v_normal;
in vec3 v_color;
flat in int v_material;
flat in int v_tag;
flat in float v_seed;
layout(location = 0) out vec4 g_albedo;   // rgb, specular strength
layout(location = 1) out vec4 g_normal;   // xyz, shininess (0 = sky)
layout(location = 2) out vec4 g_emit;     // rgb if on; switch code: class * 2 + hash (16-bit)
layout(location = 3) out vec4 g_pos;      // world xyz, wet-able share + 2 * glass

// switch classes: which preset light switch turns an emissive surface on
#define ALWAYS 0.0
#define STREET 1.0
#define HEAD 2.0
#define TAIL 3.0
#define WINDOW 4.0

void main() {
    vec3 n = normalize(v_normal);
    vec3 p = v_pos;
    vec3 albedo = v_color;
    float spec = 0.04, shin = 16.0, wet = 0.0;
    vec3 emit = vec3(0.0);
    float code = ALWAYS * 2.0;
    int m = v_material;
    vec2 uv = abs(n.z) > 0.5 ? p.xy : vec2(dot(p.xy, vec2(-n.y, n.x)), p.z);

    if (m == ASPHALT) {
        albedo *= 0.7 + 0.55 * fbm(p.xy * 2.5) + 0.2 * (hash12(floor(p.xy * 37.0)) - 0.5);
        albedo *= mix(1.0, 0.75, smoothstep(0.55, 0.7, vnoise(p.xy * 0.17 + v_seed * 10.0)));
        wet = 1.0;
    } else if (m == MARKING) {
        albedo *= 0.85 + 0.2 * vnoise(p.xy * 7.0) - 0.35 * smoothstep(0.6, 0.85, vnoise(p.xy * 2.3));
        wet = 1.0;
    } else if (m == PAVING) {
        vec2 t = fract(uv * 2.0);
        albedo *= (min(t.x, t.y) < 0.05 ? 0.7 : 1.0) * (0.85 + 0.3 * hash12(floor(uv * 2.0) + v_seed * 100.0));
        albedo *= 0.85 + 0.25 * vnoise(uv * 9.0);
        wet = 1.0;
    } else if (m == FACADE) {
        if (abs(n.z) < 0.5) {
            float fw = 2.4 + 1.6 * fract(v_seed * 7.3), fh = 3.0 + 0.6 * fract(v_seed * 3.1);
            vec2 g = vec2(uv.x / fw, uv.y / fh);
            vec2 cell = floor(g), f = fract(g);
            float ww = 0.2 + 0.12 * fract(v_seed * 11.7);
            bool win = f.x > ww && f.x < 1.0 - ww && f.y > 0.3 && f.y < 0.85 && uv.y > 0.8;
            if (win) {
                albedo = vec3(0.04, 0.05, 0.065) * (0.8 + 0.6 * hash12(cell));
                spec = 0.6; shin = 80.0;
                emit = vec3(1.0, 0.72, 0.42) * (0.2 + 0.5 * hash12(cell * 1.7 + 3.0));
                code = WINDOW * 2.0 + hash12(cell + v_seed * 53.0) * 0.999;
            } else {
                albedo *= 0.8 + 0.25 * vnoise(uv * 1.3) + 0.1 * hash12(floor(uv * vec2(4.0, 8.0)));
                if (f.y < 0.08 || abs(f.x - 0.5) > 0.5 - ww + 0.05 && f.y > 0.25 && f.y < 0.9)
                    albedo *= 0.85;
            }
        } else {
            albedo *= 0.5 + 0.3 * vnoise(p.xy * 0.7);
        }
    } else if (m == FOLIAGE) {
        float l = 0.6 * vnoise3(p * 5.0) + 0.4 * vnoise3(p * 15.0);
        albedo *= 0.45 + 1.1 * l;
        n = normalize(n + 0.8 * (vec3(vnoise3(p * 4.0), vnoise3(p * 4.0 + 7.1), vnoise3(p * 4.0 + 3.3)) - 0.5));
    } else if (m == GRASS) {
        float g = fbm(p.xy * 3.0);
        albedo *= 0.55 + 0.8 * g;
        albedo = mix(albedo, vec3(0.3, 0.24, 0.15), 0.5 * smoothstep(0.55, 0.75, fbm(p.xy * 0.4 + 5.0)));
        wet = 0.5;
    } else if (m == PAINT) {
        spec = 0.5; shin = 60.0; wet = 0.3;
        albedo *= 0.95 + 0.08 * vnoise3(p * 3.0);
    } else if (m == GLASS) {
        spec = 0.9; shin = 120.0;
    } else if (m == LAMP) {
        emit = vec3(8.0, 6.5, 4.2);
        code = STREET * 2.0;
        albedo *= 0.4;
    } else if (m == HEADLIGHT) {
        emit = vec3(9.0, 8.5, 7.5);
        code = HEAD * 2.0;
        spec = 0.6; shin = 60.0;
    } else if (m == TAILLIGHT) {
        emit = vec3(4.0, 0.15, 0.08);
        code = TAIL * 2.0;
    } else if (m == SIGNAL) {
        emit = v_color * 4.0;
    } else if (m == CONCRETE) {
        vec2 b = fract(uv * vec2(1.25, 2.5));
        albedo *= (min(b.x, b.y) < 0.04 ? 0.8 : 1.0) * (0.8 + 0.35 * vnoise(uv * 3.0));
        wet = 0.6;
    } else if (m == METAL) {
        spec = 0.35; shin = 40.0;
        albedo *= 0.9 + 0.15 * vnoise3(p * 6.0);
    } else if (m == CLOTH) {
        albedo *= 0.8 + 0.35 * vnoise3(p * 9.0);
    } else if (m == SKIN) {
        spec = 0.1;
    } else if (m == BARK) {
        albedo *= 0.6 + 0.7 * vnoise(vec2(uv.x * 9.0, uv.y * 1.2));
    } else if (m == RUBBER) {
        spec = 0.1;
    } else if (m == SIGNFACE) {
        if (n.x < -0.5) {
            float s = fract((p.y * 1.7 + p.z * 1.3) + v_seed * 5.0);
            albedo = mix(albedo, vec3(0.9), step(0.72, s));
        } else {
            albedo = vec3(0.4);
        }
        spec = 0.3;
    }

    g_albedo = vec4(albedo, spec);
    g_normal = vec4(n, shin);
    g_emit = vec4(emit, code);
    g_pos = vec4(p, wet + (m == GLASS ? 2.0 : 0.0));
}
