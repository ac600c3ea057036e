#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    voxprompt_fuzz::dicom(data);
});
