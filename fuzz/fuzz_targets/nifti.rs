#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    voxprompt_fuzz::nifti(data);
});
