// The gauze release, printed by `gauze version` and the plugin's logs.
export const GAUZE_VERSION = "0.1.0";
