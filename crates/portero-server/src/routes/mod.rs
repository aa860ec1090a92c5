pub mod admin;
pub mod health;
pub mod import;
pub mod lifecycle;
pub mod metadata;
pub mod token;
