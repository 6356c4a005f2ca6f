//! "Did you mean ...?" for misspelt keys, after darling's suggestion of the nearest
//! valid name.

/// The Levenshtein distance between `a` and `b`, by characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate nearest to `input`, if it is near enough to be a likely typo: at most
/// a third of the longer name's length away (and at least one edit allowed), or the
/// input is a prefix or a case-insensitive match of the candidate.
pub(crate) fn nearest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let lower = input.to_ascii_lowercase();
    candidates
        .iter()
        .map(|&c| (edit_distance(&lower, c), c))
        .filter(|&(d, c)| {
            let len = lower.chars().count().max(c.len());
            d <= (len / 3).max(1) || (lower.len() >= 3 && c.starts_with(&lower))
        })
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &[
        "num_loops",
        "join_in",
        "lives",
        "name",
        "daemon",
        "mailbox",
        "timeout",
    ];

    #[test]
    fn distance() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("lives", "lives"), 0);
        assert_eq!(edit_distance("live", "lives"), 1);
        assert_eq!(edit_distance("loop", "pool"), 2);
    }

    #[test]
    fn suggestions() {
        assert_eq!(nearest("live", KEYS), Some("lives"));
        assert_eq!(nearest("lifes", KEYS), Some("lives"));
        assert_eq!(nearest("numloops", KEYS), Some("num_loops"));
        assert_eq!(nearest("num_loop", KEYS), Some("num_loops"));
        assert_eq!(nearest("joinin", KEYS), Some("join_in"));
        assert_eq!(nearest("Daemon", KEYS), Some("daemon"));
        assert_eq!(nearest("timeouts", KEYS), Some("timeout"));
        assert_eq!(nearest("join", KEYS), Some("join_in"));
        assert_eq!(nearest("mailbx", KEYS), Some("mailbox"));
        assert_eq!(nearest("mail_box", KEYS), Some("mailbox"));
        assert_eq!(nearest("Mailbox", KEYS), Some("mailbox"));
        assert_eq!(nearest("mail", KEYS), Some("mailbox"));
        assert_eq!(nearest("colour", KEYS), None);
        assert_eq!(nearest("x", KEYS), None);
        let sections = ["preloop", "loop", "postloop", "onfinish"];
        assert_eq!(nearest("on_finish", &sections), Some("onfinish"));
        assert_eq!(nearest("pre_loop", &sections), Some("preloop"));
        assert_eq!(nearest("lop", &sections), Some("loop"));
    }
}
