pub mod health;
pub mod metadata;
pub mod token;
