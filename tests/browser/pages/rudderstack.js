// RudderStack's JavaScript SDK (v3) as an app bundles it from npm, plugins included.
import { RudderAnalytics } from '@rudderstack/analytics-js/bundled';

window.RudderAnalytics = RudderAnalytics;
