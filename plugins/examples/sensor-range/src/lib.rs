//! Sensor readings (`device_id` string, `temperature` float, `ts` timestamp): the
//! device must be named and the temperature within [-50, 150] (settings
//! `min_temperature`, `max_temperature`).

use streamhost_sdk::{export_validator, info, Event, Info, Settings, Validator, Verdict};

#[derive(Debug)]
pub struct SensorRange {
    min: f64,
    max: f64,
}

impl Validator for SensorRange {
    const INFO: Info = info!["device_id", "temperature"];

    fn configure(settings: &Settings) -> Result<Self, String> {
        settings.only(&["min_temperature", "max_temperature"])?;
        let min = settings.parse_or("min_temperature", -50.0)?;
        let max = settings.parse_or("max_temperature", 150.0)?;
        Ok(SensorRange { min, max })
    }

    fn check(&self, event: &Event) -> Verdict {
        if event.text("device_id").unwrap_or("").is_empty() {
            return Verdict::reject("invalid_device_id", "device_id is empty or missing");
        }
        match event.float("temperature") {
            Some(t) if !(self.min..=self.max).contains(&t) => Verdict::reject(
                "temperature_out_of_range",
                format!("temperature {t} is outside [{}, {}]", self.min, self.max),
            ),
            _ => Verdict::Accept,
        }
    }
}

export_validator!(SensorRange);

#[cfg(test)]
mod tests {
    use super::*;
    use streamhost_sdk::testing::{check, settings};

    #[test]
    fn judges_readings() {
        let rule = SensorRange::configure(&settings(&[])).unwrap();
        let reading = |json: &str| check(&rule, json).code().map(str::to_string);
        assert_eq!(
            reading(r#"{"device_id": "d1", "temperature": 21.5, "ts": 1}"#),
            None
        );
        assert_eq!(reading(r#"{"device_id": "d1", "temperature": 150}"#), None);
        let hot = reading(r#"{"device_id": "d1", "temperature": 150.5}"#);
        assert_eq!(hot.as_deref(), Some("temperature_out_of_range"));
        let cold = reading(r#"{"device_id": "d1", "temperature": -51}"#);
        assert_eq!(cold.as_deref(), Some("temperature_out_of_range"));
        let unnamed = reading(r#"{"device_id": "", "temperature": 20.0}"#);
        assert_eq!(unnamed.as_deref(), Some("invalid_device_id"));
    }

    #[test]
    fn settings_move_the_range_and_refuse_nonsense() {
        let rule = SensorRange::configure(&settings(&[("max_temperature", "30")])).unwrap();
        let verdict = check(&rule, r#"{"device_id": "d1", "temperature": 31.0}"#);
        assert_eq!(
            verdict,
            Verdict::reject(
                "temperature_out_of_range",
                "temperature 31 is outside [-50, 30]"
            )
        );
        assert!(SensorRange::configure(&settings(&[("max_temperature", "hot")])).is_err());
        assert!(SensorRange::configure(&settings(&[("max", "30")])).is_err());
    }
}
