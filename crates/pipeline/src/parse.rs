//! Parsers for numbers given as text (command-line flags): each accepts what its name says
//! and explains a refusal in a short phrase.

/// A finite number above 0.
pub fn positive_f64(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value > 0.0 => Ok(value),
        _ => Err(format!("'{text}' is not a finite number above 0")),
    }
}

/// A finite number of at least 0.
pub fn non_negative_f64(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(value) if value.is_finite() && value >= 0.0 => Ok(value),
        _ => Err(format!("'{text}' is not a finite number of at least 0")),
    }
}

/// A finite number above 0 that float32 holds.
pub fn positive_f32(text: &str) -> Result<f32, String> {
    positive_f64(text).and_then(|value| {
        let narrowed = value as f32;
        (narrowed.is_finite() && narrowed > 0.0)
            .then_some(narrowed)
            .ok_or_else(|| format!("'{text}' is out of range"))
    })
}

/// A finite number of at least 0 that float32 holds.
pub fn non_negative_f32(text: &str) -> Result<f32, String> {
    non_negative_f64(text).and_then(|value| {
        let narrowed = value as f32;
        narrowed
            .is_finite()
            .then_some(narrowed)
            .ok_or_else(|| format!("'{text}' is out of range"))
    })
}

/// A whole number of at least 1.
pub fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(value) if value >= 1 => Ok(value),
        _ => Err(format!("'{text}' is not a whole number of at least 1")),
    }
}

/// `X,Y,Z,T`: four whole numbers.
pub fn shape4(text: &str) -> Result<[usize; 4], String> {
    let sides: Vec<usize> = text
        .split(',')
        .map(|side| side.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("'{text}' is not four comma-separated whole numbers X,Y,Z,T"))?;
    sides
        .try_into()
        .map_err(|_| format!("'{text}' is not four comma-separated whole numbers X,Y,Z,T"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_checked() {
        assert_eq!(positive_f64(" 2.5 "), Ok(2.5));
        assert!(positive_f64("0").is_err() && positive_f64("nan").is_err());
        assert_eq!(non_negative_f64("0"), Ok(0.0));
        assert!(non_negative_f64("-1").is_err());
        assert!(positive_f32("1e60").is_err());
        assert_eq!(at_least_one("3"), Ok(3));
        assert!(at_least_one("0").is_err() && at_least_one("-2").is_err());
        assert_eq!(shape4("1, 2,3,4"), Ok([1, 2, 3, 4]));
        assert!(shape4("1,2,3").is_err());
    }
}
