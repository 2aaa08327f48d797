// Sky colour, fog and tone mapping, all driven by the weather preset (see lighting.py).
//#include noise.glsl
uniform vec3 u_sun_dir;        // towards the sun
uniform vec3 u_sun_color;      // direct sunlight (already dimmed by clouds)
uniform vec3 u_sky_zenith;
uniform vec3 u_sky_horizon;
uniform vec3 u_ground_color;   // ambient from below
uniform vec3 u_fog_color;
uniform float u_fog_density;   // per metre
uniform float u_fog_start;     // metres
uniform float u_fog_falloff;   // per metre of height
uniform float u_cloudiness;    // 0..1
uniform float u_mie;           // sun halo strength
uniform float u_exposure;
uniform float u_gamma;
uniform float u_time_seed;     // fixed per layout: cloud pattern

vec3 sky_gradient(vec3 dir) {  // the sky without sun and clouds: cheap, for reflections
    return mix(u_sky_horizon, u_sky_zenith, pow(clamp(dir.z, 0.0, 1.0), 0.55));
}

vec3 sky_color(vec3 dir) {
    vec3 sky = sky_gradient(dir);
    float cs = max(dot(dir, u_sun_dir), 0.0);
    sky += u_sun_color * (0.04 * u_mie * pow(cs, 8.0) + 0.25 * pow(cs, 64.0));
    sky += u_sun_color * 4.0 * smoothstep(0.9995, 0.9998, cs) * (1.0 - u_cloudiness);
    if (dir.z > 0.0) {  // clouds on a plane far above
        vec2 uv = dir.xy / (dir.z + 0.08) * 1.5 + u_time_seed * 17.0;
        float n = fbm(uv);
        float cover = smoothstep(1.0 - u_cloudiness - 0.1, 1.0 - u_cloudiness + 0.25, n);
        vec3 cloud = mix(u_sky_horizon * 1.05, u_sun_color * 0.25 + u_sky_horizon * 0.7, 0.4);
        sky = mix(sky, cloud, cover * smoothstep(0.0, 0.15, dir.z));
    }
    return sky;
}

vec3 apply_fog(vec3 color, float dist, float height) {
    float d = max(dist - u_fog_start, 0.0);
    float dens = u_fog_density * exp(-u_fog_falloff * max(height, 0.0));
    return mix(color, u_fog_color, clamp(1.0 - exp(-d * dens), 0.0, 1.0));
}

vec3 tonemap(vec3 c) {
    c = vec3(1.0) - exp(-c * u_exposure);
    return pow(clamp(c, 0.0, 1.0), vec3(1.0 / u_gamma));
}
