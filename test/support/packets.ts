export * from '../../src/craft';
