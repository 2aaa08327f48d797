#version 330 core
// Lighting pass, once per appearance, over the G-buffer: sun with shadow map, sky and
// ground ambient, street lamps and headlights, reflections, emission, fog, sky, exposure.
//#include common.glsl
#define MAX_LIGHTS 8
uniform sampler2D g_albedo;
uniform sampler2D g_normal;
uniform sampler2D g_emit;
uniform sampler2D g_pos;
uniform sampler2DShadow u_shadow_map;
uniform mat4 u_light_vp;
uniform mat4 u_inv_view_proj;
uniform vec3 u_cam_pos;
uniform float u_shadow_on;
uniform float u_wetness;       // 0..1
uniform float u_window_share;  // share of windows lit
uniform float u_street_on;
uniform float u_head_on;
uniform float u_tail_on;
uniform int u_num_lights;
uniform vec4 u_light_pos[MAX_LIGHTS];    // xyz, radius
uniform vec4 u_light_color[MAX_LIGHTS];  // rgb, cosine of the spot cut-off (-1: point)
uniform vec3 u_light_dir[MAX_LIGHTS];
in vec2 v_ndc;
out vec4 f_color;

float shadow(vec3 p, vec3 n) {
    if (u_shadow_on < 0.5) return 1.0;
    vec4 lp = u_light_vp * vec4(p + n * 0.06, 1.0);
    vec3 c = lp.xyz / lp.w * 0.5 + 0.5;
    if (any(lessThan(c.xy, vec2(0.0))) || any(greaterThan(c.xy, vec2(1.0))) || c.z > 1.0)
        return 1.0;
    // one bilinear-filtered tap: 2x2 texels of percentage-closer filtering
    return texture(u_shadow_map, vec3(c.xy, c.z - 0.0008));
}

void main() {
    ivec2 px = ivec2(gl_FragCoord.xy);
    vec4 nrm = texelFetch(g_normal, px, 0);
    if (nrm.w == 0.0) {  // nothing drawn here: sky
        vec4 a = u_inv_view_proj * vec4(v_ndc, 1.0, 1.0);
        vec4 b = u_inv_view_proj * vec4(v_ndc, -1.0, 1.0);
        vec3 dir = normalize(a.xyz / a.w - b.xyz / b.w);
        vec3 c = sky_color(dir);
        float f = 1.0 - exp(-u_fog_density * 400.0 * exp(-u_fog_falloff * 20.0 * max(dir.z, 0.0)));
        f_color = vec4(tonemap(mix(c, u_fog_color, clamp(f, 0.0, 1.0))), 1.0);
        return;
    }
    vec4 alb = texelFetch(g_albedo, px, 0);
    vec4 em = texelFetch(g_emit, px, 0);
    vec4 pw = texelFetch(g_pos, px, 0);
    vec3 n = nrm.xyz, p = pw.xyz, albedo = alb.rgb;
    float spec = alb.a, shin = nrm.w;
    float glass = pw.w >= 2.0 ? 1.0 : 0.0;
    float wet = pw.w - 2.0 * glass;

    if (wet > 0.0) {
        float w = wet * u_wetness;
        albedo *= 1.0 - 0.5 * w;
        spec = mix(spec, 0.8, w);
        shin = mix(shin, 120.0, w);
    }

    vec3 V = normalize(u_cam_pos - p);
    float ndl = max(dot(n, u_sun_dir), 0.0);
    float sh = ndl > 0.0 ? shadow(p, n) : 0.0;
    vec3 H = normalize(u_sun_dir + V);
    vec3 c = u_sun_color * sh * ndl * (albedo + spec * pow(max(dot(n, H), 0.0), shin));
    vec3 sky_amb = mix(u_sky_horizon, u_sky_zenith, 0.5);
    float ao = abs(n.z) < 0.5 ? mix(0.55, 1.0, clamp(p.z / 2.0, 0.0, 1.0)) : 1.0;
    c += albedo * ao * mix(u_ground_color, sky_amb, n.z * 0.5 + 0.5);

    for (int i = 0; i < u_num_lights; i++) {
        vec3 L = u_light_pos[i].xyz - p;
        float d = length(L);
        float r = u_light_pos[i].w;
        if (d > r) continue;
        L /= d;
        float att = (1.0 - d / r) * (1.0 - d / r) / (1.0 + 0.08 * d * d);
        float cut = u_light_color[i].w;
        if (cut > -1.0) att *= smoothstep(cut, cut + 0.08, dot(-L, u_light_dir[i]));
        vec3 Hl = normalize(L + V);
        c += u_light_color[i].rgb * att * (albedo * max(dot(n, L), 0.0)
                                           + spec * pow(max(dot(n, Hl), 0.0), shin));
    }

    float k = glass > 0.0 ? 0.5 : 0.6 * wet * u_wetness;
    if (k > 0.0) {
        float fres = 0.04 + 0.96 * pow(1.0 - max(dot(n, V), 0.0), 5.0);
        c += k * fres * sky_gradient(reflect(-V, n));
    }

    float cls = floor(em.w * 0.5);  // which switch turns this emission on
    float on = cls == 0.0 ? 1.0 : cls == 1.0 ? u_street_on : cls == 2.0 ? u_head_on
             : cls == 3.0 ? u_tail_on : step(em.w - 2.0 * cls, u_window_share);
    c += em.rgb * on;
    c = apply_fog(c, length(u_cam_pos - p), p.z);
    f_color = vec4(tonemap(c), 1.0);
}
