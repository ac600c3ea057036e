use super::*;

fn resolver() -> Resolver {
    Resolver::lexical(Arc::new(Vocabulary::builtin().unwrap()))
}

fn ids(r: &Resolver, text: &str) -> Vec<String> {
    r.resolve(text, Domain::Any).unwrap_or_else(|e| panic!("{text:?}: {e}")).concepts
}

#[test]
fn the_builtin_vocabulary_is_consistent() {
    let v = Vocabulary::builtin().unwrap();
    assert_eq!(v.concepts.iter().filter(|c| c.region == Region::Body).count(), 122);
    assert!(v.concepts.iter().filter(|c| c.region == Region::Brain).count() > 800);
    let k = v.get("kidney_left").unwrap();
    assert_eq!(
        (k.side, k.twin.as_deref(), k.labels.as_slice()),
        (Some(Laterality::Left), Some("kidney_right"), &[3][..])
    );
    assert_eq!(
        k.snomed.as_ref().map(|s| (s.type_code.as_str(), s.modifier.as_deref())),
        Some(("64033007", Some("7771000")))
    );
}

#[test]
fn sides_come_from_the_words_in_any_order() {
    let r = resolver();
    for t in ["left kidney", "Kidney, left", "the kidney on the left side", "LT KIDNEY", "left-sided kidney"] {
        assert_eq!(ids(&r, t), vec!["kidney_left"], "{t}");
    }
    assert_eq!(ids(&r, "kidneys"), vec!["kidney_left", "kidney_right"]);
    assert_eq!(ids(&r, "both lungs"), vec!["lung_left", "lung_right"]);
    assert_eq!(ids(&r, "right lower lobe"), vec!["lung_lower_lobe_right"]);
    // A side said of a structure without sides is kept as a modifier.
    let liver = r.resolve("left liver", Domain::Any).unwrap();
    assert_eq!((liver.concepts, liver.modifiers), (vec!["liver".to_string()], vec!["left".to_string()]));
}

#[test]
fn abbreviations_lesions_and_typos() {
    let r = resolver();
    assert_eq!(ids(&r, "IVC"), vec!["inferior_vena_cava"]);
    let hcc = r.resolve("HCC", Domain::Any).unwrap();
    assert_eq!((hcc.concepts, hcc.lesion), (vec!["liver".to_string()], Some(LesionKind::Tumor)));
    let t = r.resolve("tumour of the upper pole of the right kidney", Domain::Any).unwrap();
    assert_eq!(
        (t.concepts, t.lesion, t.modifiers),
        (vec!["kidney_right".to_string()], Some(LesionKind::Tumor), vec!["upper pole".to_string()])
    );
    assert_eq!(r.resolve("renal cyst", Domain::Any).unwrap().lesion, Some(LesionKind::Cyst));
    let typo = r.resolve("left kindey", Domain::Any).unwrap();
    assert_eq!((typo.concepts, typo.method), (vec!["kidney_left".to_string()], Method::Typo { edits: 1 }));
    assert_eq!(ids(&r, "L1"), vec!["vertebrae_L1"]);
    assert_eq!(ids(&r, "left hippocampus"), vec!["brain.aseg-auto:17"]);
}

#[test]
fn refusals_carry_the_dedicated_code_and_suggestions() {
    let r = resolver();
    for t in ["hello there", "banana", "tumour"] {
        let e = r.resolve(t, Domain::Any).unwrap_err();
        assert_eq!(e.code(), crate::ErrorCode::UnknownConcept, "{t}: {e}");
    }
    let e = r.resolve("kidnee stone thing", Domain::Any).unwrap_err();
    assert!(e.to_string().contains("closest:"), "{e}");
    assert_eq!(r.resolve("  ", Domain::Any).unwrap_err().code(), crate::ErrorCode::InvalidArgument);
    // The brain vocabulary is not searched for a body-only volume.
    assert_eq!(r.resolve("hippocampus", Domain::Body).unwrap_err().code(), crate::ErrorCode::UnknownConcept);
}

/// Bag-of-letter-trigrams vectors: close spellings are close, as a stand-in for the text encoder.
struct Trigrams;
impl Embedder for Trigrams {
    fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let mut v = vec![0f32; 257];
        let b: Vec<u8> = format!("  {text} ").bytes().collect();
        for w in b.windows(3) {
            let h = w.iter().fold(7u32, |h, &c| h.wrapping_mul(31).wrapping_add(c as u32));
            v[(h % 257) as usize] += 1.0;
        }
        Ok(v)
    }
    fn name(&self) -> &str {
        "trigrams"
    }
}

#[test]
fn the_bank_round_trips_and_backs_the_lexical_pass() {
    let vocab = Arc::new(Vocabulary::builtin().unwrap());
    let bank = Bank::build(&vocab, "trigrams", |b| b.iter().map(|t| Trigrams.embed(t)).collect()).unwrap();
    let again = Bank::parse(&bank.to_bytes()).unwrap();
    assert_eq!((again.len(), again.dim, again.encoder.as_str()), (vocab.phrases().len(), 257, "trigrams"));
    let worst = (0..bank.len())
        .map(|i| bank.row(i).iter().zip(again.row(i)).map(|(a, b)| a * b).sum::<f32>())
        .fold(1f32, f32::min);
    assert!(worst > 0.999, "int8 bank cosine {worst}");
    assert!(again.matches(&vocab));
    let mut truncated = bank.to_bytes();
    truncated.pop();
    assert_eq!(Bank::parse(&truncated).unwrap_err().code(), crate::ErrorCode::ModelContract);

    let mut r = Resolver::with_encoder(vocab.clone(), again, Arc::new(Trigrams)).unwrap();
    // Trigram vectors are far cruder than a sentence encoder's.
    r.acceptance = Acceptance { similarity: 0.4, margin: 0.01 };
    // Beyond one typo per word: the encoder's nearest phrase, the side still from the words.
    let m = r.resolve("left kidnyee parenchima", Domain::Any).unwrap();
    assert_eq!((m.concepts.clone(), m.method), (vec!["kidney_left".to_string()], Method::Embedding), "{m:?}");
    assert!(!m.alternatives.is_empty());
    r.acceptance = Acceptance::default();
    let e = r.resolve("qqqq zzzz", Domain::Any).unwrap_err();
    assert_eq!(e.code(), crate::ErrorCode::UnknownConcept);
    assert!(e.to_string().contains("closest:"), "{e}");
    // A bank from another vocabulary is refused.
    let other = Arc::new(
        Vocabulary::parse(
            &[(Region::Body, "x", "[[concept]]\nid = \"x\"\nname = \"x\"\nterms = [\"x\"]\n")],
            include_str!("../../concepts/grammar.toml"),
        )
        .unwrap(),
    );
    let b = Bank::build(&vocab, "trigrams", |b| b.iter().map(|t| Trigrams.embed(t)).collect()).unwrap();
    assert_eq!(
        Resolver::with_encoder(other, b, Arc::new(Trigrams)).unwrap_err().code(),
        crate::ErrorCode::ModelContract
    );
}
