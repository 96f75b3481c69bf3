import { connect } from "../shared/bridge.js"; connect({name:"j",version:"0"});
