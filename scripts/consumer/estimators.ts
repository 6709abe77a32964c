import { type LogMEOptions, leep, logME } from '@transferlab/evaluation/estimators';

const opts: LogMEOptions = {};
const s: number = leep([[0.5, 0.5]], [0]) + logME([[1, 2]], [0], opts);
export default s;
