/// The version both services report (status documents, Home Assistant's `origin`).
public enum ServiceVersion {
    public static let current = "0.1.0"
}
