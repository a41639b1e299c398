//! Small number formatting for reasons and condition messages.

/// `12345.6` → `"12,346"`.
pub fn count(v: f64) -> String {
    let neg = v < 0.0;
    let digits = format!("{:.0}", v.abs());
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if neg && digits != "0" {
        format!("-{out}")
    } else {
        out
    }
}

/// Growth with an explicit sign: `"+1,200"` or `"-300"`.
pub fn signed(v: f64) -> String {
    if v >= 0.0 {
        format!("+{}", count(v))
    } else {
        count(v)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn groups_thousands() {
        assert_eq!(super::count(0.0), "0");
        assert_eq!(super::count(999.4), "999");
        assert_eq!(super::count(1234567.0), "1,234,567");
        assert_eq!(super::signed(-1500.0), "-1,500");
        assert_eq!(super::signed(12.0), "+12");
    }
}
